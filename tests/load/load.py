#!/usr/bin/env python3
"""Sampling and analysis for kald's load benchmark (tests/load/run.sh). Python stdlib only.

  load.py sample OUT KALD_PID SIPP_PID...   every 0.25 s until the sipp processes are gone:
                                            kald CPU ticks (all threads and the media
                                            thread), VmRSS, open fds; sipp CPU ticks
  load.py step KIND LABEL DIR               one step's figures from DIR (sipp stats, samples,
                                            capture, kald log) as one JSON line
  load.py table RESULTS.jsonl RSS.txt          print the tables (RSS.txt: name=kB lines)
"""

import calendar
import csv
import json
import math
import os
import subprocess
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def ticks(path):
    """utime + stime of a /proc stat file, or None when the process is gone."""
    try:
        with open(path) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def media_tid(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == "kald-media":
                    return tid
        except OSError:
            pass
    return None


def busy_ticks():
    """CPU time the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]) - v[3] - v[4]


def sip_drops(port):
    """Datagrams the kernel dropped on kald's SIP socket (receive buffer full): /proc/net/udp."""
    want = f":{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            v = line.split()
            if v[1].endswith(want):
                return int(v[-1])
    return 0


def runq_wait_ns(pid, tid):
    """Time the thread spent runnable but waiting for a CPU (/proc/.../schedstat, field 2)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def sample(out, kald, sipps):
    port = int(os.environ.get("KALD_SIP_PORT", "5070"))
    tid = media_tid(kald)
    with open(out, "w") as f:
        f.write("t,kald_ticks,media_ticks,main_ticks,rss_kb,fds,sipp_ticks,box_ticks,sip_drops,media_wait_ns\n")
        while True:
            alive = [p for p in sipps if os.path.exists(f"/proc/{p}")]
            k = ticks(f"/proc/{kald}/stat")
            m = ticks(f"/proc/{kald}/task/{tid}/stat") if tid else 0
            # The SIP loop runs in `block_on` on kald's main thread (tid = pid).
            main_t = ticks(f"/proc/{kald}/task/{kald}/stat")
            try:
                fds = len(os.listdir(f"/proc/{kald}/fd"))
            except OSError:
                fds = 0
            s = sum(ticks(f"/proc/{p}/stat") or 0 for p in alive)
            f.write(f"{time.time():.3f},{k},{m},{main_t},{rss_kb(kald)},{fds},{s},{busy_ticks()},{sip_drops(port)},{runq_wait_ns(kald, tid)}\n")
            f.flush()
            if not alive or k is None:
                return
            time.sleep(0.25)


def read_samples(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return [{k: float(v) for k, v in r.items()} for r in rows]


def sipp_totals(paths):
    """Sum the last line of each sipp -trace_stat CSV; also the peak of CurrentCall summed
    across processes (per second)."""
    tot = {"created": 0, "ok": 0, "failed": 0, "retrans": 0, "start": None, "end": None,
           "setup_ms_sum": 0.0}
    current = {}
    causes = {}
    for p in paths:
        with open(p) as f:
            rows = list(csv.reader(f, delimiter=";"))
        head, rows = rows[0], [r for r in rows[1:] if len(r) >= 20]
        if not rows:
            continue
        col = {name: i for i, name in enumerate(head)}
        last = rows[-1]
        tot["created"] += int(last[col["TotalCallCreated"]])
        tot["ok"] += int(last[col["SuccessfulCall(C)"]])
        tot["failed"] += int(last[col["FailedCall(C)"]])
        tot["retrans"] += int(last[col["Retransmissions(C)"]])
        # sipp's cumulative response time column stays 0 with -fd; weight the periodic ones.
        for r in rows:
            h, m, sec, us = r[col["ResponseTimesetup(P)"]].split(":")
            setup_ms = (int(h) * 3600 + int(m) * 60 + int(sec)) * 1000 + int(us) / 1000
            tot["setup_ms_sum"] += setup_ms * int(r[col["SuccessfulCall(P)"]])
        for name, i in col.items():
            if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)":
                n = int(last[i])
                if n:
                    key = name[len("Failed") : -3]
                    causes[key] = causes.get(key, 0) + n
        start = float(rows[0][col["StartTime"]].split("\t")[-1])
        end = float(last[col["CurrentTime"]].split("\t")[-1])
        tot["start"] = start if tot["start"] is None else min(tot["start"], start)
        tot["end"] = end if tot["end"] is None else max(tot["end"], end)
        for r in rows:
            t = round(float(r[col["CurrentTime"]].split("\t")[-1]))
            current[t] = current.get(t, 0) + int(r[col["CurrentCall"]])
    tot["causes"] = causes
    tot["peak_current"] = max(current.values()) if current else 0
    return tot


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))]


def jitter(pcap):
    """p50/p99/max of |send interval - 20 ms| in µs for consecutive packets of each stream
    (SSRC) in the capture of kald's RTP, and how many streams and intervals it saw."""
    if not os.path.exists(pcap):
        return None
    out = subprocess.run(
        ["tshark", "-r", pcap, "-d", "udp.port==16000-16099,rtp", "-T", "fields",
         "-e", "frame.time_epoch", "-e", "rtp.ssrc", "-e", "rtp.seq", "-Y", "rtp"],
        capture_output=True, text=True, check=False).stdout
    last = {}
    dev = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[1]:
            continue
        t, ssrc, seq = float(parts[0]), parts[1], int(parts[2])
        prev = last.get(ssrc)
        if prev and (prev[1] + 1) % 65536 == seq:
            dev.append(abs((t - prev[0]) * 1e6 - 20_000))
        last[ssrc] = (t, seq)
    return {
        "streams": len(last), "intervals": len(dev),
        "p50": percentile(dev, 50), "p99": percentile(dev, 99),
        "max": max(dev) if dev else None,
    }


def kald_media_line(log, start, end):
    """The last periodic `media` line kald logged inside [start, end] (cumulative figures)."""
    best = None
    with open(log, errors="replace") as f:
        for line in f:
            if '"media"' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ts = rec.get("timestamp", "")
            t = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
            t += float("0" + ts[19:-1]) if ts[19:20] == "." else 0
            if start <= t <= end:
                best = rec.get("fields", rec)
    return best


def step(kind, label, d):
    s = read_samples(os.path.join(d, "samples.csv"))
    stats = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".csv") and f.startswith("sipp"))
    st = sipp_totals(stats)
    # CPU over the sipp run (first to last sample).
    wall = s[-1]["t"] - s[0]["t"]
    cpu = (s[-1]["kald_ticks"] - s[0]["kald_ticks"]) / TCK
    media = (s[-1]["media_ticks"] - s[0]["media_ticks"]) / TCK
    main_cpu = (s[-1]["main_ticks"] - s[0]["main_ticks"]) / TCK
    sipp_cpu = max(r["sipp_ticks"] for r in s) / TCK  # each sipp started at ~0 ticks
    box = (s[-1]["box_ticks"] - s[0]["box_ticks"]) / TCK
    # Busiest second of kald (CPU % over a sliding 2 s window), to spot saturation.
    peak_cpu = 0.0
    j = 0
    for i in range(len(s)):
        while s[i]["t"] - s[j]["t"] > 2.0:
            j += 1
        if s[i]["t"] - s[j]["t"] >= 1.0:
            peak_cpu = max(peak_cpu, (s[i]["kald_ticks"] - s[j]["kald_ticks"]) / TCK / (s[i]["t"] - s[j]["t"]))
    done = st["ok"] + st["failed"]
    res = {
        "kind": kind,
        "label": label,
        "created": st["created"],
        "ok": st["ok"],
        "failed": st["failed"],
        "failed_pct": 100.0 * st["failed"] / done if done else 0.0,
        "causes": st["causes"],
        "retrans": st["retrans"],
        "peak_concurrent_sipp": st["peak_current"],
        # kald holds one RTP and one RTCP socket per call; the rest of its fds are fixed.
        "peak_concurrent_kald": int((max(r["fds"] for r in s) - s[0]["fds"]) / 2),
        "wall_s": wall,
        "setups_per_s": st["created"] / (st["end"] - st["start"]) if st["end"] and st["end"] > st["start"] else 0,
        "kald_cpu_pct": 100 * cpu / wall if wall else 0,
        "kald_peak_cpu_pct": 100 * peak_cpu,
        "media_cpu_pct": 100 * media / wall if wall else 0,
        "sip_loop_cpu_pct": 100 * main_cpu / wall if wall else 0,
        "cpu_ms_per_call": 1000 * cpu / done if done else None,
        "sipp_cpu_pct": 100 * sipp_cpu / wall if wall else 0,
        # Everything else the machine ran meanwhile (other programs, the sampler, dumpcap).
        # (/proc/stat is tick-sampled, per-process times are exact: small negatives mean 0.)
        "other_cpu_pct": max(0.0, 100 * (box - cpu - sipp_cpu) / wall) if wall else 0,
        "setup_ms": st["setup_ms_sum"] / st["ok"] if st["ok"] else None,
        "sip_drops": int(s[-1]["sip_drops"] - s[0]["sip_drops"]),
        # How long the media thread waited for a CPU while runnable, % of wall time: packets
        # are late because of this, not because the thread has too much to do.
        "media_wait_pct": 100 * (s[-1]["media_wait_ns"] - s[0]["media_wait_ns"]) / 1e9 / wall if wall else 0,
        # The machine (or this VM) did not run the sampler for over 1 s: figures unreliable.
        "sampler_gap_s": max((b["t"] - a["t"] for a, b in zip(s, s[1:])), default=0),
        "peak_rss_kb": max(r["rss_kb"] for r in s),
        "jitter": jitter(os.path.join(d, "rtp.pcap")),
        "kald_media": kald_media_line(os.path.join(d, "..", "kald.log"), s[0]["t"], s[-1]["t"] + 1),
    }
    print(json.dumps(res))


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def is_noisy(r):
    return r["other_cpu_pct"] > 50 or r["sampler_gap_s"] > 1.5


def noise(r):
    if r["sampler_gap_s"] > 1.5:
        return f"gap{r['sampler_gap_s']:.0f}s"
    return "BUSY" if r["other_cpu_pct"] > 50 else "ok"


def row(vals, w=7):
    print(" ".join(f"{str(v):>{w}}" for v in vals))


def table(path, rss_path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    rss = {}
    for line in open(rss_path):
        if "=" in line:
            k, v = line.strip().split("=", 1)
            rss[k] = int(v)
    idle_kb = rss.get("idle", 0)
    prompt = [r for r in rows if r["kind"] == "prompt"]
    short = [r for r in rows if r["kind"] == "short"]
    if prompt:
        print("\n1. Prompt-and-DTMF calls (INVITE, welcome, '1', '#', goodbye, kald's BYE)")
        row(("target", "conc", "calls", "fail%", "setup/s", "setupms", "kald%", "peak%", "sipL%", "media%",
             "mwait%", "cpums/c", "sipp%", "other%", "machine", "sipdrop", "RSS MiB", "KiB/c",
             "jit50us", "jit99us", "jitmax", "late50", "late99"))
        for r in prompt:
            conc = r["peak_concurrent_kald"]
            per_call = (r["peak_rss_kb"] - idle_kb) / conc if conc else None
            j = r["jitter"] or {}
            m = r["kald_media"] or {}
            row((r["label"], conc, r["ok"] + r["failed"], fmt(r["failed_pct"], "{:.2f}"),
                 fmt(r["setups_per_s"]), fmt(r["setup_ms"], "{:.1f}"), fmt(r["kald_cpu_pct"]),
                 fmt(r["kald_peak_cpu_pct"]), fmt(r["sip_loop_cpu_pct"]), fmt(r["media_cpu_pct"]),
                 fmt(r["media_wait_pct"], "{:.1f}"),
                 fmt(r["cpu_ms_per_call"], "{:.2f}"), fmt(r["sipp_cpu_pct"]), fmt(r["other_cpu_pct"]),
                 noise(r), r["sip_drops"], fmt(r["peak_rss_kb"] / 1024, "{:.1f}"), fmt(per_call, "{:.1f}"),
                 fmt(j.get("p50")), fmt(j.get("p99")), fmt(j.get("max")),
                 m.get("late_p50_us", "-"), m.get("late_p99_us", "-")))
        for r in prompt:
            if r["causes"] or r["retrans"]:
                print(f"   {r['label']}: failures {r['causes'] or 'none'}, sipp retransmissions {r['retrans']}")
        ok = [r for r in prompt if r["failed_pct"] < 1.0 and r["ok"] > 0 and not is_noisy(r)]
        if ok:
            best = max(ok, key=lambda r: r["peak_concurrent_kald"])
            print(f"   => max concurrent calls with < 1% failed (steps with machine ok): {best['peak_concurrent_kald']} "
                  f"(step {best['label']}, {best['setups_per_s']:.0f} setups/s, "
                  f"jitter p99 {fmt((best['jitter'] or {}).get('p99'))} us)")
        else:
            print("   => no step on a quiet machine had < 1% failed calls")
    if short:
        print("\n2. Setups per second without media (INVITE, 200, ACK, BYE at once)")
        row(("target", "calls", "fail%", "setup/s", "setupms", "conc", "kald%", "peak%", "sipL%", "cpums/c",
             "sipp%", "other%", "machine", "sipdrop", "RSS MiB"))
        for r in short:
            row((r["label"], r["ok"] + r["failed"], fmt(r["failed_pct"], "{:.2f}"),
                 fmt(r["setups_per_s"]), fmt(r["setup_ms"], "{:.1f}"), r["peak_concurrent_kald"],
                 fmt(r["kald_cpu_pct"]), fmt(r["kald_peak_cpu_pct"]), fmt(r["sip_loop_cpu_pct"]),
                 fmt(r["cpu_ms_per_call"], "{:.2f}"), fmt(r["sipp_cpu_pct"]), fmt(r["other_cpu_pct"]),
                 noise(r), r["sip_drops"], fmt(r["peak_rss_kb"] / 1024, "{:.1f}")))
        for r in short:
            if r["causes"] or r["retrans"]:
                print(f"   {r['label']}/s: failures {r['causes'] or 'none'}, sipp retransmissions {r['retrans']}")
        ok = [r for r in short if r["failed_pct"] < 1.0 and r["ok"] > 0 and not is_noisy(r)]
        if ok:
            best = max(ok, key=lambda r: r["setups_per_s"])
            print(f"   => max achieved with < 1% failed (machine ok): {best['setups_per_s']:.0f} setups/s "
                  f"(target {best['label']}/s, mean setup {fmt(best['setup_ms'], '{:.1f}')} ms)")
    print("\nkald RSS (MiB): " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in rss.items()))
    last = list(rss.values())[-1] if rss else 0
    verdict = "back to idle" if last <= idle_kb * 1.25 + 4096 else "NOT back to idle"
    print(f"   => {verdict} ({last / 1024:.1f} MiB vs {idle_kb / 1024:.1f} MiB idle)")


def main(argv):
    if len(argv) >= 4 and argv[1] == "sample":
        sample(argv[2], int(argv[3]), [int(p) for p in argv[4:]])
    elif len(argv) == 5 and argv[1] == "step":
        step(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "table":
        table(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
