#!/usr/bin/env python3
"""Checks of kald's recordings for the recorded-calls benchmark (recorded.sh) and the crash
test (crash.sh). Python stdlib only; the audio is checked by `agentsim wavcheck`.

  recordings.py step DIR DATA KEYFILE KALD AGENTSIM     one step's recordings as a JSON line
  recordings.py crash DIR DATA KEYFILE KALD AGENTSIM    the crash test's verdict as JSON
  recordings.py holes DIR DATA                          right-channel holes vs the agents' RTP on the wire
  recordings.py brief                                   one line about the JSON line on stdin
  recordings.py table RECORDINGS.jsonl                  the table

A step's recordings are the catalogue rows (DATA/kald.db, table recordings) that started
inside the step's window (DIR/window: t0, t1). Each is matched to the agentsim call
(DIR/calls.csv) of the same agent whose 200 was sent nearest its start (within 1 s), exported
with `kald recording export` and checked:

  complete   the export says "complete" (the final chunk is there), the catalogue says
             'closed', and |WAV length − (kald's BYE at the agent − the agent's 200)| ≤ 40 ms;
  aligned    the left channel carries the citizen's 440 Hz from at most 300 ms after the start
             (the citizen keys the consent digit, 140 ms of RFC 4733 events, then sends its
             tone; the agent may answer before the tone starts), then in every whole second
             (Goertzel share of each 20 ms frame's energy, averaged over the frames that are not
             silent, ≥ 0.8 at 440 Hz and < 0.05 at 1000 Hz: the e2e test's thresholds per second
             instead of over the middle half; at least half the frames not silent), and no 100 ms
             block of the whole channel has more than 5 % of its energy at 1000 Hz; the right
             channel the same with the tones swapped, its tone from at most 100 ms after the
             start (agentsim sends from its 200);
  clean      (reported, not part of the target) every 100 ms block after the onset but the last
             has ≥ 0.8 of its energy at the channel's tone and no 20 ms frame in between misses
             it: nothing lost or concealed.
"""

import concurrent.futures as cf
import csv
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

WINDOW_MS = 40
BLOCK_SLACK = 1
# The citizen (sipp) sends 140 ms of RFC 4733 events for the consent digit, then its tone: the
# agent may answer (and the recording start) before the tone does.
LEFT_ONSET_MS = 300
# The agent (agentsim) sends its tone from its 200 on.
RIGHT_ONSET_MS = 100


def percentile(v, p):
    if not v:
        return None
    v = sorted(v)
    k = max(0, min(len(v) - 1, int(-(-p / 100 * len(v) // 1)) - 1))
    return v[k]


def read_window(d):
    w = {}
    with open(os.path.join(d, "window")) as f:
        for line in f:
            for part in line.split():
                k, v = part.split("=", 1)
                w[k] = float(v)
    return w


def catalogue(data):
    con = sqlite3.connect(f"file:{os.path.join(data, 'kald.db')}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM recordings")]
    tomb = con.execute("SELECT count(*) FROM tombstones").fetchone()[0]
    con.close()
    return rows, tomb


def files_on_disk(data):
    root = os.path.join(data, "recordings")
    out = set()
    for dirpath, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def agent_calls(d):
    calls = {}
    with open(os.path.join(d, "calls.csv")) as f:
        for r in csv.DictReader(f):
            calls.setdefault(r["agent"], []).append(r)
    return calls


def export_and_check(rows, data, keyfile, kald, agentsim):
    """Export every row's file; returns {id: {"export": ..., "wav": wavcheck JSON}}."""
    tmp = tempfile.mkdtemp(prefix="kald-rec-")
    res = {}

    def export(r):
        wav = os.path.join(tmp, r["id"] + ".wav")
        p = subprocess.run([kald, "recording", "export", os.path.join(data, "recordings", r["file"]),
                            "--out", wav, "--keys", keyfile], capture_output=True, text=True, check=False)
        return r["id"], wav, p.returncode, (p.stdout + p.stderr).strip()

    batch = []

    def flush():
        if not batch:
            return
        p = subprocess.run([agentsim, "wavcheck", *[w for _, w in batch]], capture_output=True,
                           text=True, check=False)
        by_file = {}
        for line in p.stdout.splitlines():
            j = json.loads(line)
            by_file[j["file"]] = j
        for rid, w in batch:
            res[rid]["wav"] = by_file.get(w, {"error": "no wavcheck output"})
            try:
                os.unlink(w)
            except OSError:
                pass
        batch.clear()

    with cf.ThreadPoolExecutor(max_workers=2) as ex:
        for rid, wav, rc, text in ex.map(export, rows):
            res[rid] = {"export_rc": rc, "export": text[-300:]}
            if rc == 0:
                batch.append((rid, wav))
            if len(batch) >= 40:
                flush()
    flush()
    os.rmdir(tmp)
    return res


def channel_ok(ch, onset_ms):
    """The channel's tone starts within `onset_ms` of the recording's start; in every whole
    second after that at least half of the 20 ms frames are not silent, and over those the mean
    share of the channel's tone is ≥ 0.8 and of the other side's < 0.05 (the thresholds of
    tests/pjsua2/test_recordings.py); and no 100 ms block of the whole channel has more than
    5 % of its energy at the other side's tone (no cross-talk)."""
    return (ch.get("blocks", 0) > 0 and ch["onset_ms"] is not None and ch["onset_ms"] <= onset_ms
            and ch["windows"] > 0 and ch["windows_ok"] == ch["windows"] and ch["windows_cross"] == 0
            and ch["cross_blocks"] == 0)


def channel_clean(ch):
    """Stricter: every 100 ms block after the onset but the last carries the tone (≥ 0.8) and
    no 20 ms frame in between misses it: no audio lost or concealed."""
    return (ch.get("blocks", 0) > 0 and ch["toned_after_onset"] >= ch["blocks_after_onset"] - BLOCK_SLACK
            and ch["gap_frames"] == 0)


def aligned(wav):
    return "left" in wav and channel_ok(wav["left"], LEFT_ONSET_MS) and channel_ok(wav["right"], RIGHT_ONSET_MS)


def clean(wav):
    return "left" in wav and channel_clean(wav["left"]) and channel_clean(wav["right"])


def dist(v):
    if not v:
        return None
    return {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99),
            "max": max(v), "min": min(v)}


def step(d, data, keyfile, kald, agentsim):
    w = read_window(d)
    rows, tomb = catalogue(data)
    files = files_on_disk(data)
    named = {r["file"] for r in rows}
    mine = [r for r in rows if w["t0"] * 1e6 <= r["started_us"] <= w["t1"] * 1e6]
    calls = agent_calls(d)
    bridged = sum(1 for cs in calls.values() for c in cs if c["acked_ns"])
    checked = export_and_check(mine, data, keyfile, kald, agentsim)
    used = set()
    per = []
    for r in mine:
        best = None
        for c in calls.get(r["agent_id"], []):
            if not c["answered_ns"]:
                continue
            dt = abs(int(c["answered_ns"]) / 1e3 - r["started_us"])
            if dt < 1e6 and (best is None or dt < best[0]):
                best = (dt, c)
        x = checked.get(r["id"], {})
        wav = x.get("wav", {})
        item = {"id": r["id"], "state": r["state"], "duration_ms": r["duration_ms"],
                "export_rc": x.get("export_rc"), "export": x.get("export"),
                "complete_export": x.get("export_rc") == 0 and x.get("export", "").endswith("complete"),
                "wav_s": wav.get("seconds"), "wav_error": wav.get("error")}
        if best:
            c = best[1]
            used.add((r["agent_id"], c["answered_ns"]))
            call_s = (int(c["ended_ns"]) - int(c["answered_ns"])) / 1e9
            item["call_s"] = call_s
            item["ended_by"] = c["ended_by"]
            item["start_offset_ms"] = (r["started_us"] - int(c["answered_ns"]) / 1e3) / 1e3
            if item["wav_s"] is not None:
                item["err_ms"] = 1000 * (item["wav_s"] - call_s)
        if "left" in wav:
            item["left"] = wav["left"]
            item["right"] = wav["right"]
            item["aligned"] = aligned(wav)
            item["clean"] = clean(wav)
        else:
            item["aligned"] = item["clean"] = False
        item["db_vs_wav_ms"] = (r["duration_ms"] - 1000 * item["wav_s"]) if (
            item["wav_s"] is not None and r["duration_ms"] is not None) else None
        item["complete"] = (item["complete_export"] and r["state"] == "closed"
                            and item.get("err_ms") is not None and abs(item["err_ms"]) <= WINDOW_MS)
        per.append(item)
    with open(os.path.join(d, "recordings-checked.jsonl"), "w") as f:
        for item in per:
            f.write(json.dumps(item) + "\n")
    errs = [i["err_ms"] for i in per if i.get("err_ms") is not None]
    abs_errs = [abs(e) for e in errs]
    unmatched_calls = [(a, c["answered_ns"]) for a, cs in calls.items() for c in cs
                       if c["acked_ns"] and (a, c["answered_ns"]) not in used]
    n = len(per)
    res = {
        "label": os.path.basename(d),
        "bridged_calls_at_agents": bridged,
        "recordings": n,
        "bridged_calls_without_recording": len(unmatched_calls),
        "recordings_without_call": sum(1 for i in per if "call_s" not in i),
        "states": {s: sum(1 for i in per if i["state"] == s) for s in {i["state"] for i in per}},
        "exported": sum(1 for i in per if i["export_rc"] == 0),
        "export_failures": [i["export"] for i in per if i["export_rc"] != 0][:5],
        "complete": sum(1 for i in per if i["complete"]),
        "aligned": sum(1 for i in per if i["aligned"]),
        "complete_and_aligned": sum(1 for i in per if i["complete"] and i["aligned"]),
        "complete_and_aligned_pct": 100.0 * sum(1 for i in per if i["complete"] and i["aligned"]) / n if n else None,
        "clean": sum(1 for i in per if i["clean"]),
        "clean_left": sum(1 for i in per if "left" in i and channel_clean(i["left"])),
        "clean_right": sum(1 for i in per if "right" in i and channel_clean(i["right"])),
        "gap_100ms_or_more": sum(1 for i in per if "left" in i and max(i["left"]["longest_gap_ms"], i["right"]["longest_gap_ms"]) >= 100),
        "window_min": min((min(i["left"]["window_min"], i["right"]["window_min"]) for i in per if "left" in i), default=None),
        "window_cross_max": max((max(i["left"]["window_cross_max"], i["right"]["window_cross_max"]) for i in per if "left" in i), default=None),
        "err_ms": dist(errs),
        "abs_err_ms": dist(abs_errs),
        "over_40ms": sum(1 for e in abs_errs if e > WINDOW_MS),
        "db_vs_wav_ms": dist([abs(i["db_vs_wav_ms"]) for i in per if i["db_vs_wav_ms"] is not None]),
        "start_offset_ms": dist([i["start_offset_ms"] for i in per if "start_offset_ms" in i]),
        "left_gap_frames": dist([i["left"]["gap_frames"] for i in per if "left" in i]),
        "right_gap_frames": dist([i["right"]["gap_frames"] for i in per if "right" in i]),
        "left_onset_ms": dist([i["left"]["onset_ms"] for i in per if "left" in i and i["left"]["onset_ms"] is not None]),
        "right_onset_ms": dist([i["right"]["onset_ms"] for i in per if "right" in i and i["right"]["onset_ms"] is not None]),
        "left_cross_max": max((i["left"]["cross_max"] for i in per if "left" in i), default=None),
        "right_cross_max": max((i["right"]["cross_max"] for i in per if "right" in i), default=None),
        "not_aligned_examples": [{k: i.get(k) for k in ("id", "left", "right")} for i in per if not i["aligned"]][:3],
        "not_complete_examples": [{k: i.get(k) for k in ("id", "state", "export", "wav_s", "call_s", "err_ms", "ended_by")}
                                  for i in per if not i["complete"]][:5],
        "catalogue": {"rows": len(rows), "files": len(files), "rows_without_file": len(named - files),
                      "files_without_row": len(files - named), "tombstones": tomb},
        "window_s": w["t1"] - w["t0"],
        "kald_disk_write_bytes": w["io1"] - w["io0"],
        "kald_disk_write_kib_s": (w["io1"] - w["io0"]) / 1024 / (w["t1"] - w["t0"]),
        "recorded_bytes": sum(os.path.getsize(os.path.join(data, "recordings", r["file"])) for r in mine
                              if r["file"] in files),
    }
    print(json.dumps(res))


def crash(d, data, keyfile, kald, agentsim):
    """After kill -9 and a restart: every recording catalogued and exportable, and its length
    within 1 s of (kill time − the agent's 200)."""
    with open(os.path.join(d, "kill_ns")) as f:
        kill_ns = int(f.read().strip())
    rows, tomb = catalogue(data)
    files = files_on_disk(data)
    named = {r["file"] for r in rows}
    calls = agent_calls(d)
    checked = export_and_check(rows, data, keyfile, kald, agentsim)
    per = []
    for r in rows:
        best = None
        for c in calls.get(r["agent_id"], []):
            if c["answered_ns"]:
                dt = abs(int(c["answered_ns"]) / 1e3 - r["started_us"])
                if dt < 1e6 and (best is None or dt < best[0]):
                    best = (dt, c)
        x = checked.get(r["id"], {})
        wav = x.get("wav", {})
        item = {"id": r["id"], "state": r["state"], "duration_ms": r["duration_ms"],
                "export_rc": x.get("export_rc"), "export": x.get("export"), "wav_s": wav.get("seconds")}
        if best:
            item["until_kill_s"] = (kill_ns - int(best[1]["answered_ns"])) / 1e9
            if item["wav_s"] is not None:
                item["lost_s"] = item["until_kill_s"] - item["wav_s"]
        item["aligned"] = aligned(wav)
        item["clean"] = clean(wav)
        item["intact"] = (x.get("export_rc") == 0 and item.get("lost_s") is not None
                          and -0.04 <= item["lost_s"] <= 1.0)
        per.append(item)
    with open(os.path.join(d, "recordings-checked.jsonl"), "w") as f:
        for item in per:
            f.write(json.dumps(item) + "\n")
    lost = [i["lost_s"] for i in per if i.get("lost_s") is not None]
    res = {
        "label": "crash",
        "recordings": len(rows),
        "states": {s: sum(1 for r in rows if r["state"] == s) for s in {r["state"] for r in rows}},
        "files": len(files),
        "rows_without_file": len(named - files),
        "files_without_row": len(files - named),
        "tombstones": tomb,
        "matched_to_calls": sum(1 for i in per if "until_kill_s" in i),
        "exported": sum(1 for i in per if i["export_rc"] == 0),
        "export_failures": [i["export"] for i in per if i["export_rc"] != 0][:5],
        "intact_to_last_second": sum(1 for i in per if i["intact"]),
        "aligned": sum(1 for i in per if i["aligned"]),
        "clean": sum(1 for i in per if i["clean"]),
        "intact_within_1_06s": sum(1 for i in per if i.get("lost_s") is not None and -0.04 <= i["lost_s"] <= 1.06
                                   and i["export_rc"] == 0),
        "lost_s": dist(lost),
        "db_vs_wav_ms": dist([abs(i["duration_ms"] - 1000 * i["wav_s"]) for i in per
                              if i["wav_s"] is not None and i["duration_ms"] is not None]),
        "not_intact_examples": [i for i in per if not i["intact"]][:5],
    }
    print(json.dumps(res))


def holes(d, data):
    """Holes of 100 ms or more in the recordings' right channel (the agent), in wall-clock time,
    against the captured agent → kald RTP (DIR/agents-rtp.pcap, kald's ports = 0 mod 64): for
    each moment with holes, the longest silence of the sampled agent streams on the wire around it."""
    con = sqlite3.connect(f"file:{os.path.join(data, 'kald.db')}?mode=ro", uri=True)
    start = {r[0]: r[1] / 1e6 for r in con.execute("SELECT id, started_us FROM recordings")}
    con.close()
    found = []
    with open(os.path.join(d, "recordings-checked.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            for at_ms, ms in (j.get("right") or {}).get("gaps", []):
                if ms >= 100:
                    found.append((start[j["id"]] + at_ms / 1000, ms))
    out = subprocess.run(["tshark", "-r", os.path.join(d, "agents-rtp.pcap"), "-T", "fields", "-e",
                          "frame.time_epoch", "-e", "udp.srcport", "-e", "udp.dstport"],
                         capture_output=True, text=True, check=False).stdout
    # agentsim's sockets have ephemeral ports (ip_local_port_range), kald's media ports are
    # allocated from the bottom of 20000-59999: agent → kald is ephemeral → below it.
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    streams = {}
    for line in out.splitlines():
        p = line.split("\t")
        if len(p) == 3 and p[1] and p[2] and int(p[1]) >= lo > int(p[2]):
            streams.setdefault((p[1], p[2]), []).append(float(p[0]))
    span = (min(min(v) for v in streams.values()), max(max(v) for v in streams.values())) if streams else None
    moments = {}
    for t, ms in found:
        moments.setdefault(round(t, 1), []).append(ms)
    res = []
    for t in sorted(moments):
        worst = 0.0
        for ts in streams.values():
            near = [x for x in ts if t - 1 <= x <= t + 1]
            worst = max([worst] + [(b - a) * 1000 for a, b in zip(near, near[1:])])
        res.append({"t": t, "recordings": len(moments[t]), "hole_ms_max": max(moments[t]),
                    "in_capture": bool(span and span[0] <= t <= span[1]),
                    "wire_silence_ms_max": round(worst, 1)})
    print(json.dumps({"holes": len(found), "agent_streams_captured": len(streams), "moments": res}))


def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def brief():
    r = json.loads(sys.stdin.readline())
    e = r.get("abs_err_ms") or {}
    print(f"  {r['label']}: {r['recordings']} recordings for {r['bridged_calls_at_agents']} bridged calls, "
          f"complete+aligned {r['complete_and_aligned']} ({fmt(r['complete_and_aligned_pct'], '{:.2f}')}%), "
          f"|err| p50 {fmt(e.get('p50'))} p99 {fmt(e.get('p99'))} max {fmt(e.get('max'))} ms, "
          f"catalogue {r['catalogue']}")


def table(path):
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        e, ae = r["err_ms"] or {}, r["abs_err_ms"] or {}
        print(f"{r['label']}: {r['recordings']} recordings for {r['bridged_calls_at_agents']} bridged calls "
              f"({r['bridged_calls_without_recording']} bridged without a recording, "
              f"{r['recordings_without_call']} recordings without a call); states {r['states']}")
        print(f"  exported {r['exported']}, complete {r['complete']}, aligned {r['aligned']}, "
              f"complete and aligned {r['complete_and_aligned']} ({fmt(r['complete_and_aligned_pct'], '{:.2f}')} %)")
        print(f"  1 s windows: own tone share min {fmt(r['window_min'], '{:.3f}')}, other side's max "
              f"{fmt(r['window_cross_max'], '{:.4f}')}; without a lost or concealed 20 ms frame: {r['clean']} "
              f"(left {r['clean_left']}, right {r['clean_right']}); with a hole of 100 ms or more: {r['gap_100ms_or_more']}")
        print(f"  WAV length − (BYE at the agent − the agent's 200), ms: p50 {fmt(e.get('p50'))}, "
              f"min {fmt(e.get('min'))}, max {fmt(e.get('max'))}; |err| p50 {fmt(ae.get('p50'))} "
              f"p99 {fmt(ae.get('p99'))} max {fmt(ae.get('max'))}; over 40 ms: {r['over_40ms']}")
        so = r["start_offset_ms"] or {}
        print(f"  catalogue start − the agent's 200, ms: p50 {fmt(so.get('p50'))} p99 {fmt(so.get('p99'))} "
              f"max {fmt(so.get('max'))}; |catalogue − WAV| max {fmt((r['db_vs_wav_ms'] or {}).get('max'))} ms")
        lg, rg, ro = r["left_gap_frames"] or {}, r["right_gap_frames"] or {}, r["right_onset_ms"] or {}
        lo = r.get("left_onset_ms") or {}
        print(f"  20 ms frames without the tone inside a file: left p50 {lg.get('p50')} p99 {lg.get('p99')} "
              f"max {lg.get('max')}, right p50 {rg.get('p50')} p99 {rg.get('p99')} max {rg.get('max')}; "
              f"tone starts at (ms) left p50 {lo.get('p50')} max {lo.get('max')}, right p50 {ro.get('p50')} max {ro.get('max')}; "
              f"cross-talk share max left {fmt(r['left_cross_max'], '{:.4f}')} right {fmt(r['right_cross_max'], '{:.4f}')}")
        print(f"  catalogue {r['catalogue']}; kald wrote {r['kald_disk_write_bytes'] / 2**20:.0f} MiB in "
              f"{r['window_s']:.0f} s ({r['kald_disk_write_kib_s']:.0f} KiB/s); recordings {r['recorded_bytes'] / 2**20:.0f} MiB")
        if r["not_complete_examples"]:
            print(f"  not complete, e.g. {r['not_complete_examples'][:3]}")
        if r["not_aligned_examples"]:
            print(f"  not aligned, e.g. {json.dumps(r['not_aligned_examples'][:2])[:600]}")


def main(argv):
    if len(argv) == 7 and argv[1] in ("step", "crash"):
        (step if argv[1] == "step" else crash)(*argv[2:])
    elif len(argv) == 4 and argv[1] == "holes":
        holes(argv[2], argv[3])
    elif len(argv) == 2 and argv[1] == "brief":
        brief()
    elif len(argv) == 3 and argv[1] == "table":
        table(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
