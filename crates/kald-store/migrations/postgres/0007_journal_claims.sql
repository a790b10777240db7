-- Which journaliser claim a pending journal export is under (issue 9). A kald claims due
-- documents under a lease (next_attempt_us moved to the lease's end) and a token of its own;
-- recording a failed delivery requires that token, so a delivery that outlived its lease
-- cannot overwrite the newer claim of another kald. NULL: never claimed.
ALTER TABLE journal_exports ADD COLUMN claim TEXT;
