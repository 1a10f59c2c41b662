"""Turns the measured numbers into BENCHMARKS.md and a small PNG chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Targets of the benchmark issue, as ratios measured in the same run.
UNARY_TARGET = 1.05
FIRST_AUDIO_TARGET = 1.1
THROUGHPUT_TARGET = 0.9
TARGET_CLIENTS = "4"
# Shapes whose 4-client throughput is within this fraction of the best count as equally good;
# among them the one that serves a lone client fastest wins.
SHAPE_TOLERANCE = 0.05


def concat(chunks: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _min_med(values: Sequence[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def _mm(values: Sequence[float], digits: int = 2) -> str:
    low, mid = _min_med(values)
    return f"{low:.{digits}f} / {mid:.{digits}f}"


def _median_s(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}"


def _ratio(num: Sequence[float], den: Sequence[float]) -> tuple[float, float]:
    """(ratio of the minimums, ratio of the medians): the two ways noise can be discounted."""
    return min(num) / min(den), statistics.median(num) / statistics.median(den)


def _rr(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} / {pair[1]:.2f}"


def _verdict(pair: tuple[float, float], limit: float, higher_is_better: bool = False) -> str:
    value = pair[1]
    ok = value >= limit if higher_is_better else value <= limit
    return "met" if ok else "**missed**"


def choose_shape(load: dict[str, Any]) -> tuple[str, str]:
    """The default pool shape from the throughput table, and the reason in one sentence."""
    service = load["service"]
    at4 = {shape: row["cells"][TARGET_CLIENTS]["throughput"] for shape, row in service.items()
           if TARGET_CLIENTS in row["cells"]}
    if not at4:
        return "", "no 4-client measurements"
    best = max(at4.values())
    close = [shape for shape, rate in at4.items() if rate >= (1 - SHAPE_TOLERANCE) * best]
    alone = {shape: service[shape]["cells"]["1"]["throughput"] for shape in close}
    chosen = max(close, key=lambda shape: alone[shape])
    others = ", ".join(f"{s} {r:.2f}" for s, r in sorted(at4.items(), key=lambda i: -i[1]))
    reason = (f"{chosen} makes {at4[chosen]:.2f} audio s per wall s with 4 clients (all shapes: "
              f"{others}); of the shapes within {SHAPE_TOLERANCE:.0%} of the best there, it "
              f"serves a lone client fastest ({alone[chosen]:.2f} audio s/s with 1 client)")
    return chosen, reason


def _lone_client_note(load: dict[str, Any], chosen: str) -> list[str]:
    """What the chosen shape costs a single caller, against the shape that serves one best."""
    service = load["service"]
    alone = {shape: row["cells"]["1"] for shape, row in service.items() if "1" in row["cells"]}
    if chosen not in alone:
        return []
    # Of the shapes about as fast for one caller, the one with the fewest engines (memory).
    best = max(cell["throughput"] for cell in alone.values())
    fastest = min((shape for shape, cell in alone.items()
                   if cell["throughput"] >= (1 - SHAPE_TOLERANCE) * best),
                  key=lambda shape: int(shape.split("x")[0]))
    if fastest == chosen:
        return []
    mine, theirs = alone[chosen], alone[fastest]
    return [
        f"The price: a lone client gets {mine['throughput']:.2f} audio s per wall s and first "
        f"audio after {mine['first_audio_median_s']:.2f} s on {chosen}, against "
        f"{theirs['throughput']:.2f} and {theirs['first_audio_median_s']:.2f} s on "
        f"{fastest}. A server with one user at a time should run {fastest} "
        f"(`TTS_ENGINES={fastest.split('x')[0]} TTS_ENGINE_THREADS={fastest.split('x')[1]}`).",
        "",
    ]


def _targets(results: dict[str, Any]) -> list[str]:
    latency = results["latency"]["texts"]
    load = results["load"]
    lines = ["| target | measured (min-based / median-based) | limit | verdict |",
             "|---|---|---|---|"]
    for name, row in latency.items():
        pair = _ratio(row["unary"], row["raw_total"])
        lines.append(f"| unary / raw engine, {name} | {_rr(pair)} | <= {UNARY_TARGET} "
                     f"| {_verdict(pair, UNARY_TARGET)} |")
    if "paragraph" in latency:
        row = latency["paragraph"]
        pair = _ratio(row["stream_first"], row["raw_first_piece"])
        lines.append(f"| stream first audio / raw engine on the first piece, paragraph "
                     f"| {_rr(pair)} | <= {FIRST_AUDIO_TARGET} "
                     f"| {_verdict(pair, FIRST_AUDIO_TARGET)} |")
        pair = _ratio(row["stream_first"], row["unary"])
        lines.append(f"| stream first audio / unary total, paragraph | {_rr(pair)} "
                     f"| well under 1 | {'met' if pair[1] < 0.2 else '**missed**'} |")
    raw_best = max(row["throughput"] for row in load["raw"].values())
    best_shape = max(load["raw"], key=lambda s: load["raw"][s]["throughput"])
    at4 = {shape: row["cells"][TARGET_CLIENTS]["throughput"]
           for shape, row in load["service"].items() if TARGET_CLIENTS in row["cells"]}
    if at4:
        shape = max(at4, key=lambda s: at4[s])
        ratio = at4[shape] / raw_best
        lines.append(
            f"| service throughput, 4 clients ({shape}) / best raw engine ({best_shape}) "
            f"| {ratio:.2f} | >= {THROUGHPUT_TARGET} "
            f"| {'met' if ratio >= THROUGHPUT_TARGET else '**missed**'} |")
    return lines


def _runtime_table(runtimes: list[dict[str, Any]]) -> list[str]:
    lines = ["| runtime | onnxruntime | threads | CPU s per audio s (min / median) "
             "| wall s per audio s (median) |", "|---|---|---|---|---|"]
    for r in runtimes:
        lines.append(f"| {r['runtime']} | {r['version']} | {r['num_threads']} "
                     f"| {_mm(r['cpu_per_audio_s'], 3)} "
                     f"| {statistics.median(r['wall_per_audio_s']):.3f} |")
    return lines


def _latency_table(latency: dict[str, Any]) -> list[str]:
    lines = [
        "| text | words | pieces | audio s | raw engine | service unary | unary / raw "
        "| stream total | stream first audio | raw engine, first piece alone "
        "| first audio / first piece | raw engine first sentence |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in latency.items():
        lines.append(
            f"| {name} | {row['words']} | {row['pieces']} | {row['audio_s']:.1f} "
            f"| {_mm(row['raw_total'])} | {_mm(row['unary'])} "
            f"| {_rr(_ratio(row['unary'], row['raw_total']))} | {_mm(row['stream_total'])} "
            f"| {_mm(row['stream_first'])} "
            f"| {_mm(row['raw_first_piece'])} ({row['first_piece_chars']} chars) "
            f"| {_rr(_ratio(row['stream_first'], row['raw_first_piece']))} "
            f"| {_mm(row['raw_first'])} |")
    return lines


def _clause_tables(latency: dict[str, Any]) -> list[str]:
    clauses = latency["clauses"]
    policies = list(next(iter(clauses.values()))["policies"])
    default = "default (100/40)"
    lines = [
        "| text | first sentence chars | raw engine, whole first sentence "
        "| first clause chars | raw engine, first clause | service stream first audio "
        "| sooner by |", "|---|---|---|---|---|---|---|"]
    for name, row in clauses.items():
        cell = row["policies"][default]
        gain = statistics.median(row["raw_sentence"]) / statistics.median(row["stream_first"])
        lines.append(
            f"| {name} | {row['sentence_chars']} | {_mm(row['raw_sentence'])} "
            f"| {cell['first_piece_chars']} | {_mm(cell['raw_first_piece'])} "
            f"| {_mm(row['stream_first'])} | {gain:.1f}x |")
    lines += ["", "| policy (clause_split_chars / min_clause_chars) | first piece chars "
              "(per text) | pieces | raw engine, first piece (median, per text) "
              "| word error rate |", "|---|---|---|---|---|"]
    wer = latency["wer"]
    for policy in policies:
        cells = [row["policies"][policy] for row in clauses.values()]
        lines.append(
            f"| {policy} | {', '.join(str(c['first_piece_chars']) for c in cells)} "
            f"| {sum(c['pieces'] for c in cells)} "
            f"| {', '.join(_median_s(c['raw_first_piece']) for c in cells)} "
            f"| {f'{wer[policy]:.3f}' if policy in wer else 'not measured'} |")
    lines.append(f"| the service's own stream (default policy) | | | | {wer['service']:.3f} |")
    gains = [statistics.median(row["raw_sentence"]) / statistics.median(row["stream_first"])
             for row in clauses.values()]
    lines += ["", f"With clause splitting the service's first audio came "
              f"{min(gains):.1f}x to {max(gains):.1f}x sooner than the raw engine could give "
              f"a whole first sentence; the recognizer's word error rate was "
              f"{wer[default]:.3f} with the default policy against {wer['off']:.3f} for whole "
              "sentences."]
    return lines


def _load_tables(load: dict[str, Any]) -> list[str]:
    clients = list(next(iter(load["service"].values()))["cells"])
    lines = ["| pool shape (engines x threads) | raw engine, same shape "
             + "".join(f"| {c} client{'s' if c != '1' else ''} " for c in clients) + "|",
             "|---|---|" + "---|" * len(clients)]
    for shape, row in load["service"].items():
        cells = row["cells"]
        lines.append(f"| {shape} | {load['raw'][shape]['throughput']:.2f} "
                     + "".join(f"| {cells[c]['throughput']:.2f} " for c in clients) + "|")
    lines += ["", "Median time to first audio under that load, in seconds (max in brackets):",
              "", "| pool shape " + "".join(f"| {c} " for c in clients) + "|",
              "|---|" + "---|" * len(clients)]
    for shape, row in load["service"].items():
        cells = row["cells"]
        lines.append(f"| {shape} " + "".join(
            f"| {cells[c]['first_audio_median_s']:.2f} ({cells[c]['first_audio_max_s']:.2f}) "
            for c in clients) + "|")
    rejected = sum(cell["rejected"] for row in load["service"].values()
                   for cell in row["cells"].values())
    if rejected:
        lines += ["", f"{rejected} requests were refused with RESOURCE_EXHAUSTED."]
    return lines


def _word_timings_section(results: dict[str, Any]) -> list[str]:
    timings = results.get("word_timings")
    if not timings:  # results saved before this measurement existed
        return ["Not measured in this run."]
    off, on = timings["off"], timings["on"]
    lines = [
        f"The same stream (three sentences, \"{timings['text'][:40]}...\") on a "
        f"{timings['server']} server, with `enable_word_timings` off and on, alternating, "
        f"{len(on['cpu_s'])} times each. Server CPU seconds per call from /proc/PID/stat; "
        "times at the client. Ratio on / off (min-based / median-based):",
        "",
        "| | timings off (min / median) | timings on (min / median) | ratio on / off |",
        "|---|---|---|---|",
        f"| server CPU seconds | {_mm(off['cpu_s'])} | {_mm(on['cpu_s'])} "
        f"| {_rr(_ratio(on['cpu_s'], off['cpu_s']))} |",
        f"| first audio, s | {_mm(off['first_s'])} | {_mm(on['first_s'])} "
        f"| {_rr(_ratio(on['first_s'], off['first_s']))} |",
        f"| whole stream, s | {_mm(off['total_s'])} | {_mm(on['total_s'])} "
        f"| {_rr(_ratio(on['total_s'], off['total_s']))} |",
    ]
    same = off["audio_s"] == on["audio_s"]
    lines += ["", "Audio length with timings on is " + ("the same as" if same else
              "**not** the same as") + " with them off (pauses are shortened identically)."]
    return lines


def _memory_table(results: dict[str, Any]) -> list[str]:
    lines = ["| server | RSS after start-up | peak during start-up (VmHWM) "
             "| max RSS sampled under load | peak (VmHWM) at the end |", "|---|---|---|---|---|"]
    server = results["latency"]["server"]
    longest = max(row["words"] for row in results["latency"]["texts"].values())
    lines.append(f"| {server['engines']}x{server['threads']}, latency runs (up to {longest} "
                 "words) "
                 f"| {server['rss_start_mb']:.0f} MB | {server['hwm_start_mb']:.0f} MB "
                 f"| {server['rss_max_mb']:.0f} MB | {server['hwm_end_mb']:.0f} MB |")
    for shape, row in results["load"]["service"].items():
        lines.append(f"| {shape}, concurrency runs | {row['rss_start_mb']:.0f} MB "
                     f"| {row['hwm_start_mb']:.0f} MB | {row['rss_max_mb']:.0f} MB "
                     f"| {row['hwm_end_mb']:.0f} MB |")
    return lines


def chart(results: dict[str, Any], path: Path) -> None:
    """Three panels: latency per text, first audio with and without clauses, throughput."""
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed for a file
    import matplotlib.pyplot as plt

    latency = results["latency"]["texts"]
    clauses = results["latency"]["clauses"]
    load = results["load"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))

    names = list(latency)
    series = [("raw engine", "raw_total"), ("service unary", "unary"),
              ("stream total", "stream_total"), ("stream first audio", "stream_first"),
              ("raw engine, first piece", "raw_first_piece")]
    x = np.arange(len(names))
    width = 0.8 / len(series)
    ax = axes[0]
    for i, (label, key) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width,
               [statistics.median(latency[n][key]) for n in names], width, label=label)
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, log scale)")
    ax.set_title("Latency: service vs raw engine")
    ax.legend(fontsize=7)

    ax = axes[1]
    names = list(clauses)
    x = np.arange(len(names))
    width = 0.27
    bars = [("raw engine, whole first sentence",
             [statistics.median(clauses[n]["raw_sentence"]) for n in names]),
            ("raw engine, first clause",
             [statistics.median(clauses[n]["policies"]["default (100/40)"]["raw_first_piece"])
              for n in names]),
            ("service stream first audio",
             [statistics.median(clauses[n]["stream_first"]) for n in names])]
    for i, (label, values) in enumerate(bars):
        ax.bar(x + (i - 1) * width, values, width, label=label)
    ax.set_xticks(x, names)
    ax.set_ylabel("seconds to first audio (median)")
    ax.set_title("Long first sentences: clause splitting")
    ax.legend(fontsize=7)

    ax = axes[2]
    for shape, row in load["service"].items():
        clients = [int(c) for c in row["cells"]]
        ax.plot(clients, [cell["throughput"] for cell in row["cells"].values()], marker="o",
                label=f"service {shape}")
    best = max(load["raw"], key=lambda s: load["raw"][s]["throughput"])
    ax.axhline(load["raw"][best]["throughput"], color="black", linestyle="--",
               label=f"best raw engine ({best})")
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("audio s per wall s")
    ax.set_title("Throughput by pool shape (engines x threads)")
    ax.legend(fontsize=7)

    fig.suptitle(f"Kokoro TTS service benchmarks, {results['date']}, "
                 f"{results['machine']['cores']} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write(results: dict[str, Any], out: Path, chart_path: Path) -> None:
    chart(results, chart_path)
    machine = results["machine"]
    plan = results["plan"]
    runtime = results["raw_runtime"]
    chosen, reason = choose_shape(results["load"])
    rel_chart = chart_path.relative_to(out.parent) if chart_path.is_relative_to(out.parent) \
        else chart_path
    fastest = min(results["runtimes"], key=lambda r: statistics.median(r["cpu_per_audio_s"]))
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['date']} on {machine['cpu']}, {machine['cores']} cores "
        f"(load average at start {machine['load_at_start']}; the machine was shared, so "
        "every comparison below is a ratio of numbers measured side by side in the same run), "
        f"Python {machine['python']}, sherpa-onnx on onnxruntime {runtime['version']} "
        f"({runtime['name']}) unless a table says otherwise. Written by `make bench` "
        f"(`python -m bench`) in {results['duration_s'] / 60:.0f} minutes"
        + (" in **--quick** mode: not numbers to quote" if results.get("quick") else "")
        + f". Times are min / median of {plan['reps']} repetitions "
        f"({plan.get('paragraph_reps', plan['reps'])} for the ~300-word paragraph, whose "
        "stream runs to the end once and is hung up after its first audio in later "
        "repetitions) unless stated; voice af_bella, speed 1.0. The raw numbers are in "
        "build/bench-results.json.",
        "",
        f"![latency and throughput]({rel_chart})",
        "",
        "## Against the targets",
        "",
        *_targets(results),
        "",
        "## Engine runtime: CPU seconds per second of audio",
        "",
        f"Each row is a fresh process (the runtime is chosen once per process); "
        f"{plan['runtime_runs']} syntheses of three sentences after a warm-up. CPU time counts "
        "every thread of the process.",
        "",
        *_runtime_table(results["runtimes"]),
        "",
        f"The cheapest is {fastest['runtime']} onnxruntime {fastest['version']} with "
        f"{fastest['num_threads']} thread(s); the service and every other table here run on "
        f"{runtime['name']}.",
        "",
        "## Latency: the service against the raw engine",
        "",
        "Raw engine: one sherpa-onnx `OfflineTts` (2 threads) called in the benchmark process "
        "with the whole text, as a plain sherpa-onnx user would; its first sentence arrives "
        "through the per-sentence callback. Service: a server with 1 engine x 2 threads on "
        "the same machine, called over loopback gRPC, timed at the client; unary returns WAV, "
        "the stream 16-bit PCM. Each repetition runs raw, unary and stream one after the "
        "other on each text. Seconds:",
        "",
        *_latency_table(results["latency"]["texts"]),
        "",
        "## First audio: cutting long sentences at clauses",
        "",
        "The engine makes one piece at a time, so the first piece's length sets the time to "
        "first audio. Texts whose first sentence is long, in seconds:",
        "",
        *_clause_tables(results["latency"]),
        "",
        "Word error rates come from pocketsphinx (tests/speech.py) over all three texts, "
        "synthesized piece by piece by the raw engine under each policy (one run); \"off\" is "
        "whole sentences. The recognizer is far from perfect on synthetic speech, so only a "
        "clear rise would mean lost intelligibility.",
        "",
        "## The cost of word timings",
        "",
        *_word_timings_section(results),
        "",
        "## Throughput: concurrent clients and pool shapes",
        "",
        f"{results['load']['requests']} streamed requests of one short sentence "
        f"(\"{results['load']['text']}\") shared evenly by the clients, each client on its own "
        "channel and sending its next request when the last one ends. Audio seconds produced "
        "per wall second; the raw engine column runs the same requests on the same shape "
        "in-process (one thread per engine), just before the server of that shape starts.",
        "",
        *_load_tables(results["load"]),
        "",
        "## Server memory",
        "",
        "From /proc/PID/status of the server process: VmRSS right after it logged ready and "
        "sampled every 0.25 s during the runs, VmHWM the peak.",
        "",
        *_memory_table(results),
        "",
        "## Default pool shape",
        "",
        f"Chosen: **{chosen}** (engines x threads per engine): {reason}.",
        "",
        *_lone_client_note(results["load"], chosen),
    ]
    out.write_text("\n".join(lines), encoding="utf-8")
