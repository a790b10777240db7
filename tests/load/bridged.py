#!/usr/bin/env python3
"""Analysis for the bridged-call benchmark (tests/load/bridged.sh). Python stdlib only.

  bridged.py step KIND LABEL DIR IDLE_KB   one step's figures as one JSON line
  bridged.py brief                         one line about the JSON line on stdin
  bridged.py table RESULTS.jsonl           the table
"""

import csv
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (sipp totals, /proc samples, RTP jitter from a capture)


def ulaw(b):
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if b & 0x80 else (t - 0x84)


ULAW = [ulaw(i) for i in range(256)]


def tone_share(samples, hz):
    w = 2 * math.pi * hz / 8000
    c = 2 * math.cos(w)
    s1 = s2 = e = 0.0
    for x in samples:
        e += x * x
        s1, s2 = x + c * s1 - s2, s1
    if e < len(samples) * 100:
        return 0.0
    return 2 * (s1 * s1 + s2 * s2 - c * s1 * s2) / (len(samples) * e)


def citizen_audio(pcap, hz=1000):
    """Of kald's packets to the citizens in the capture: how many carry the agents' tone."""
    if not os.path.exists(pcap):
        return None
    out = subprocess.run(
        ["tshark", "-r", pcap, "-d", "udp.port==16000-16099,rtp", "-T", "fields",
         "-e", "rtp.ssrc", "-e", "rtp.p_type", "-e", "rtp.payload", "-Y", "rtp"],
        capture_output=True, text=True, check=False).stdout
    packets = tone = 0
    streams, toned = set(), set()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[1] != "0" or not parts[2]:
            continue
        data = bytes.fromhex(parts[2].replace(":", ""))
        packets += 1
        streams.add(parts[0])
        if tone_share([ULAW[b] for b in data], hz) > 0.5:
            tone += 1
            toned.add(parts[0])
    return {"packets": packets, "agent_tone_packets": tone, "streams": len(streams),
            "streams_with_agent_tone": len(toned)}


def agents_csv(path):
    with open(path) as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return rows


def log_counts(log, start, end):
    counts = {"connected": 0, "warn_or_error": 0}
    examples = []
    with open(log, errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            t = rec.get("timestamp", "")
            try:
                import calendar, time
                ts = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + t[19:-1])
            except ValueError:
                continue
            if not (start <= ts <= end):
                continue
            msg = rec.get("fields", {}).get("message", rec.get("message"))
            if msg == "citizen connected to agent":
                counts["connected"] += 1
            if rec.get("level") in ("WARN", "ERROR"):
                counts["warn_or_error"] += 1
                if len(examples) < 5:
                    examples.append(line.strip()[:300])
    counts["examples"] = examples
    return counts


def step(kind, label, d, idle_kb):
    s = load.read_samples(os.path.join(d, "samples.csv"))
    stats = sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith("sipp") and f.endswith(".csv"))
    st = load.sipp_totals(stats)
    with open(os.path.join(d, "summary.json")) as f:
        sim = json.load(f)
    rows = agents_csv(os.path.join(d, "agents.csv"))
    peak = max((r["in_call"] for r in rows), default=0)
    # Sustained: the 10th percentile of agents in a call once 95 % of the peak was reached,
    # until the citizens stop coming (sipp's last call created ~ the end of the samples).
    first = next((r["t"] for r in rows if r["in_call"] >= 0.95 * peak), None)
    sipp_end = st["end"] or s[-1]["t"]
    window = [r["in_call"] for r in rows if first is not None and first <= r["t"] <= sipp_end - 40]
    sustained = load.percentile(window, 10) if window else None
    wall = s[-1]["t"] - s[0]["t"]
    cpu = (s[-1]["kald_ticks"] - s[0]["kald_ticks"]) / load.TCK
    media = (s[-1]["media_ticks"] - s[0]["media_ticks"]) / load.TCK
    main_cpu = (s[-1]["main_ticks"] - s[0]["main_ticks"]) / load.TCK
    box = (s[-1]["box_ticks"] - s[0]["box_ticks"]) / load.TCK
    sipp_cpu = max(r["sipp_ticks"] for r in s) / load.TCK
    peak_rss = max(r["rss_kb"] for r in s)
    legs = int((max(r["fds"] for r in s) - s[0]["fds"]) / 2)
    done = st["ok"] + st["failed"]
    res = {
        "kind": kind, "label": label,
        "agents": sim["agents"],
        "bridged_peak": peak, "bridged_sustained_p10": sustained,
        "kald_legs_peak": legs,
        "citizen_calls": done, "citizen_failed": st["failed"],
        "citizen_failed_pct": 100.0 * st["failed"] / done if done else 0.0,
        "citizen_causes": st["causes"], "sipp_retrans": st["retrans"],
        "setup_ms": st["setup_ms_sum"] / st["ok"] if st["ok"] else None,
        "agent_calls": sim["calls_ok"] + sim["calls_failed"] + sim["calls_cut_at_end"],
        "agent_ok": sim["calls_ok"], "agent_failed": sim["calls_failed"],
        "agent_failed_pct": sim["failed_pct"], "agent_failures": sim["failures"],
        "agent_busy_rejected": sim["busy_rejected"], "agent_errors": sim["errors"],
        "agent_rtp": sim["rtp"],
        "available_to_invite": sim["available_to_invite"],
        "wall_s": wall,
        "kald_cpu_pct": 100 * cpu / wall, "media_cpu_pct": 100 * media / wall,
        "sip_loop_cpu_pct": 100 * main_cpu / wall,
        "sipp_cpu_pct": 100 * sipp_cpu / wall,
        "box_cpu_pct": 100 * box / wall,
        "cpu_ms_per_call": 1000 * cpu / done if done else None,
        "sip_drops": int(s[-1]["sip_drops"] - s[0]["sip_drops"]),
        "media_wait_pct": 100 * (s[-1]["media_wait_ns"] - s[0]["media_wait_ns"]) / 1e9 / wall,
        "peak_rss_kb": peak_rss, "idle_rss_kb": idle_kb,
        "kib_per_leg": (peak_rss - idle_kb) / legs if legs else None,
        "citizen_jitter": load.jitter(os.path.join(d, "rtp.pcap")),
        "citizen_audio": citizen_audio(os.path.join(d, "rtp.pcap")),
        "kald_log": log_counts(os.path.join(d, "..", "kald.log"), s[0]["t"], s[-1]["t"] + 5),
    }
    print(json.dumps(res))


def fmt(v, spec="{:.0f}"):
    return "-" if v is None else spec.format(v)


def brief():
    r = json.loads(sys.stdin.readline())
    a = r["available_to_invite"]
    a = a.get("from_kalds_bye_received") or a.get("from_bye_sent") or {}
    print(f"  {r['kind']} {r['label']}: bridged peak {r['bridged_peak']:.0f}, citizens {r['citizen_calls']} "
          f"({r['citizen_failed_pct']:.2f}% failed), agent calls {r['agent_calls']} "
          f"({r['agent_failed_pct']:.2f}% failed), kald {r['kald_cpu_pct']:.0f}%, "
          f"avail->INVITE p99 {fmt(a.get('p99_ms'), '{:.2f}')} ms")


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    head = ("step", "agents", "peak", "sust", "legs", "cit.calls", "cit.fail%", "ag.calls", "ag.fail%",
            "setupms", "kald%", "sipL%", "media%", "mwait%", "sipp%", "box%", "sipdrop", "RSS MiB",
            "KiB/leg", "a.jit50", "a.jit99", "a.jitmax", "c.jit50", "c.jit99", "c.jitmax", "c.tone%")
    print(" ".join(f"{h:>9}" for h in head))
    for r in rows:
        aj = r["agent_rtp"]["jitter_abs_interval_minus_20ms"]
        cj = r["citizen_jitter"] or {}
        ca = r["citizen_audio"] or {}
        tone = 100 * ca["agent_tone_packets"] / ca["packets"] if ca.get("packets") else None
        vals = (f"{r['kind']}-{r['label']}", r["agents"], fmt(r["bridged_peak"]), fmt(r["bridged_sustained_p10"]),
                r["kald_legs_peak"], r["citizen_calls"], fmt(r["citizen_failed_pct"], "{:.2f}"),
                r["agent_calls"], fmt(r["agent_failed_pct"], "{:.2f}"), fmt(r["setup_ms"], "{:.1f}"),
                fmt(r["kald_cpu_pct"]), fmt(r["sip_loop_cpu_pct"]), fmt(r["media_cpu_pct"]),
                fmt(r["media_wait_pct"], "{:.1f}"), fmt(r["sipp_cpu_pct"]), fmt(r["box_cpu_pct"]),
                r["sip_drops"], fmt(r["peak_rss_kb"] / 1024, "{:.1f}"), fmt(r["kib_per_leg"], "{:.1f}"),
                fmt(aj.get("p50_us")), fmt(aj.get("p99_us")), fmt(aj.get("max_us")),
                fmt(cj.get("p50")), fmt(cj.get("p99")), fmt(cj.get("max")), fmt(tone, "{:.1f}"))
        print(" ".join(f"{str(v):>9}" for v in vals))
    for r in rows:
        extras = []
        if r["citizen_causes"]:
            extras.append(f"citizen failures {r['citizen_causes']}")
        if r["agent_failures"]:
            extras.append(f"agent failures {r['agent_failures']}")
        if r["agent_busy_rejected"]:
            extras.append(f"INVITEs to a busy agent {r['agent_busy_rejected']}")
        if r["agent_errors"]:
            extras.append(f"agent errors {r['agent_errors']}")
        rtp = r["agent_rtp"]
        extras.append(f"agents got {rtp['received']} RTP packets ({rtp['lost']} lost, "
                      f"{rtp['citizen_tone_packets']} with the citizen's tone), sent {rtp['sent']}")
        if r["kald_log"]["warn_or_error"]:
            extras.append(f"kald WARN/ERROR lines {r['kald_log']['warn_or_error']}: {r['kald_log']['examples'][:2]}")
        a = r["available_to_invite"]
        for k, v in a.items():
            if v.get("count"):
                extras.append(f"available->INVITE ({k}): n={v['count']} p50 {v['p50_ms']:.2f} ms, "
                              f"p90 {v['p90_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms, max {v['max_ms']:.2f} ms, "
                              f"> 100 ms: {v['over_100ms']}")
        print(f"   {r['kind']}-{r['label']}: " + "; ".join(extras))


def main(argv):
    if len(argv) == 6 and argv[1] == "step":
        step(argv[2], argv[3], argv[4], int(argv[5]))
    elif len(argv) == 2 and argv[1] == "brief":
        brief()
    elif len(argv) == 3 and argv[1] == "table":
        table(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
