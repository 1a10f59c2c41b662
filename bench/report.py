"""Turns the measured numbers into BENCHMARKS.md and a small PNG chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import languages, mixes, soak, ssml

# Targets of the benchmark issue, as ratios measured in the same run.
UNARY_TARGET = 1.05
FIRST_AUDIO_TARGET = 1.1
THROUGHPUT_TARGET = 0.9
LIVE_TARGET = 1.1  # text streamed as written, against the same sentences sent whole
TARGET_CLIENTS = "4"
# The streaming split policy's name in the clause tables (bench/main.py POLICIES).
STREAM_POLICY = "streaming (first clause, 60/25)"
# Targets of the piece-scheduling issue (bench/scheduling.py).
LONE_FIRST_VS_RAW_TARGET = 1.05
LONE_FIRST_BEFORE_S = 2.16  # the default pool's first audio before piece scheduling
LONE_FIRST_VS_BEFORE_TARGET = 0.65
LONE_THROUGHPUT_TARGET = 0.9
LOADED_FIRST_TARGET = 2.0
FOUR_CLIENTS_TARGET = 0.95  # 4 clients on the default pool / best raw parallel throughput
SLOW_READERS_RSS_MB = 150
# Targets of the whole-machine issue (bench/machine.py).
IDLE_RSS_TARGET_MB = 450
EXTRA_ENGINE_TARGET_MB = 60
AFTER_PARAGRAPH_TARGET_MB = 250
PHRASE_FIRST_TARGET = 0.6  # first audio with the phrase cut / with the first sentence whole
PHRASE_WER_RISE = 0.03
ONE_CPU_THROUGHPUT_TARGET = 0.95
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


def _settings(row: dict[str, Any]) -> str:
    return (f"`TTS_ENGINES={row['engines']} TTS_ENGINE_THREADS={row['threads']} "
            f"TTS_SOLO_ENGINE_THREADS={row['solo']}`")


def _lone_client_note(load: dict[str, Any], chosen: str, default: str) -> list[str]:
    """Whether the server's default is the chosen shape, and what the chosen shape costs a
    single caller against the shape that serves one best."""
    service = load["service"]
    lines = []
    if chosen != default:
        lines += [f"**The server's default is {default}, not the shape this run chose**: "
                  "if later runs agree, change the rule in tts_service/synthesis/pool_shape.py "
                  f"(for 2 CPUs it should give {_settings(service[chosen])}).", ""]
    alone = {shape: row["cells"]["1"] for shape, row in service.items() if "1" in row["cells"]}
    if chosen not in alone:
        return lines
    best = max(cell["throughput"] for cell in alone.values())
    about_as_fast = [shape for shape, cell in alone.items()
                     if cell["throughput"] >= (1 - SHAPE_TOLERANCE) * best]
    if chosen in about_as_fast:
        return lines
    # Of the shapes about as fast for one caller, the one with the fewest engines (memory).
    fastest = min(about_as_fast,
                  key=lambda shape: service[shape]["engines"] + bool(service[shape]["solo"]))
    mine, theirs = alone[chosen], alone[fastest]
    return [
        *lines,
        f"The price: a lone client gets {mine['throughput']:.2f} audio s per wall s and first "
        f"audio after {mine['first_audio_median_s']:.2f} s on {chosen}, against "
        f"{theirs['throughput']:.2f} and {theirs['first_audio_median_s']:.2f} s on "
        f"{fastest}. A server with one user at a time should run {fastest} "
        f"({_settings(service[fastest])}).",
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
    lines += _live_targets(results.get("live"))
    lines += languages.targets(results.get("languages"))
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
    return lines + _lone_targets(results) + _memory_targets(results)


def _live_pairs(live: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """The ratios of the text-streamed-as-written measurements, by name."""
    def bound(done: str) -> list[float]:
        # Once the text is finished, only its last sentence should be left to make.
        return [d + last for d, last in zip(live[done], live["reference_last_sentence"],
                                            strict=True)]

    # At an LLM's pace the engine falls behind the text and makes one sentence after the
    # other, so the answer cannot end before the same text sent whole would.
    floor = [max(b, whole) for b, whole in zip(bound("live_text_done"),
                                               live["reference_whole_text"], strict=True)]
    pairs = {
        "first": _ratio(live["live_first_audio_after_its_token"],
                        live["reference_first_audio"]),
        "whole": _ratio(live["live_last_audio"], bound("live_text_done")),
        "floor": _ratio(live["live_last_audio"], floor),
    }
    if live.get("slow_last_audio"):
        pairs["slow"] = _ratio(live["slow_last_audio"], bound("slow_text_done"))
    return pairs


def _live_targets(live: dict[str, Any] | None) -> list[str]:
    if not live:
        return []
    pairs = _live_pairs(live)
    fast = f"{live['token_chars']} chars / {live['token_interval_s'] * 1000:.0f} ms"
    rows = [
        ("first", f"text streamed at {fast}: first audio after the token ending the first "
         "sentence / that sentence's first audio through SynthesizeStream"),
        ("whole", f"text streamed at {fast}: last audio / (text finished + last sentence's "
         "synthesis)"),
        ("floor", f"text streamed at {fast}: last audio / the later of that and the whole "
         "text through SynthesizeStream"),
    ]
    if "slow" in pairs:
        slow = f"{live['token_chars']} chars / {live['slow_token_interval_s'] * 1000:.0f} ms"
        rows.append(("slow", f"text streamed at {slow}: last audio / (text finished + last "
                     "sentence's synthesis)"))
    return [f"| {label} | {_rr(pairs[key])} | <= {LIVE_TARGET} "
            f"| {_verdict(pairs[key], LIVE_TARGET)} |" for key, label in rows]


def _live_section(live: dict[str, Any] | None) -> list[str]:
    if not live:
        return []
    pairs = _live_pairs(live)
    lines = [
        "## Text streamed as it is written",
        "",
        f"StreamingSynthesize fed {live['token_chars']} characters every "
        f"{live['token_interval_s'] * 1000:.0f} ms, as an LLM streams its answer "
        f"(\"{live['text']}\"), on a server of the default pool ({live['shape']}). Each "
        "repetition first sends the first sentence alone, "
        "the last sentence alone and the whole text through SynthesizeStream, then the whole "
        "text token by token. Seconds (min / median), measured "
        f"{live.get('measured_at', 'in the run above')}:",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| SynthesizeStream, first sentence: first audio | "
        f"{_mm(live['reference_first_audio'])} |",
        f"| streamed: first audio after the token that ended the first sentence | "
        f"{_mm(live['live_first_audio_after_its_token'])} |",
        f"| SynthesizeStream, last sentence: all its audio | "
        f"{_mm(live['reference_last_sentence'])} |",
        f"| SynthesizeStream, whole text: all its audio | "
        f"{_mm(live['reference_whole_text'])} |",
        f"| streamed: text finished (last token sent, stream half-closed) | "
        f"{_mm(live['live_text_done'])} |",
        f"| streamed: last audio | {_mm(live['live_last_audio'])} |",
    ]
    if "slow" in pairs:
        slow_ms = live["slow_token_interval_s"] * 1000
        lines += [
            f"| streamed every {slow_ms:.0f} ms: text finished | "
            f"{_mm(live['slow_text_done'])} |",
            f"| streamed every {slow_ms:.0f} ms: last audio | {_mm(live['slow_last_audio'])} |",
        ]
    lines += [
        "",
        f"Ratios (min-based / median-based): first audio {_rr(pairs['first'])}; last audio "
        f"against text finished + last sentence {_rr(pairs['whole'])}, against the later of "
        f"that and the whole text sent at once {_rr(pairs['floor'])}. Text fed at an LLM's "
        "pace (a second of it holds several seconds of speech) outruns the engine, which "
        "makes one sentence after the other: the answer then cannot end before the same "
        "text sent whole would, and the ratio against the later bound is what streaming the "
        "text costs.",
    ]
    if "slow" in pairs:
        lines.append(
            f"Fed every {live['slow_token_interval_s'] * 1000:.0f} ms instead (slower than "
            "speech is made, so each sentence is spoken before the next is written), the last "
            f"audio against text finished + last sentence is {_rr(pairs['slow'])}. This server "
            f"runs with `--streaming-max-wait {live.get('max_wait_s', 2):g}`: at that pace a "
            "sentence takes longer to write than the default 2 s, which would speak it in "
            "fragments and time a different last piece than the reference.")
    return [*lines, ""]


def _scheduling_section(results: dict[str, Any]) -> list[str]:
    if "scheduling" not in results:
        return []
    sched = results["scheduling"]
    lone = sched["lone_first"]
    lone_med = statistics.median(lone)
    # The throughput table's best raw pool; measured by the section itself when run alone.
    raw_best = max((row["throughput"] for row in results.get("load", {}).get("raw", {})
                    .values()), default=sched.get("raw_best_throughput", float("nan")))
    rows = []

    def row(name: str, measured: str, limit: str, ok: bool) -> None:
        rows.append(f"| {name} | {measured} | {limit} | {'met' if ok else '**missed**'} |")

    pair = _ratio(lone, sched["raw_piece"])
    shape = sched["shape"]
    row(f"lone stream, short sentence: first audio / raw engine ({sched['raw_threads']} "
        "threads) on it", _rr(pair), f"<= {LONE_FIRST_VS_RAW_TARGET}",
        pair[1] <= LONE_FIRST_VS_RAW_TARGET)
    row(f"lone stream, short sentence: first audio / {LONE_FIRST_BEFORE_S} s before",
        f"{lone_med / LONE_FIRST_BEFORE_S:.2f} ({_mm(lone)} s)",
        f"<= {LONE_FIRST_VS_BEFORE_TARGET}",
        lone_med / LONE_FIRST_BEFORE_S <= LONE_FIRST_VS_BEFORE_TARGET)
    rate = statistics.median(sched["lone_throughput"])
    row("lone stream, ten sentences: audio s per wall s / best raw parallel throughput",
        f"{rate / raw_best:.2f} ({_mm(sched['lone_throughput'])} vs {raw_best:.2f})",
        f">= {LONE_THROUGHPUT_TARGET}", rate / raw_best >= LONE_THROUGHPUT_TARGET)
    four = sched["four_clients_throughput"] / raw_best
    row("4 clients, short sentences: audio s per wall s / best raw parallel throughput",
        f"{four:.2f} ({sched['four_clients_throughput']:.2f} vs {raw_best:.2f})",
        f">= {FOUR_CLIENTS_TARGET}", four >= FOUR_CLIENTS_TARGET)
    mixed = statistics.median(sched["mixed_short_first"])
    row("2 long streams + short-sentence client: its median first audio / lone",
        f"{mixed / lone_med:.2f} ({mixed:.2f} s)", f"<= {LOADED_FIRST_TARGET}",
        mixed / lone_med <= LOADED_FIRST_TARGET)
    # What the slow readers hold beyond every engine at work (two long streams): engines give
    # their working memory back after each run, so idle is no longer the baseline.
    busy = sched.get("rss_busy_max_mb", sched["rss_before_slow_mb"])
    grown = sched["rss_slow_max_mb"] - busy
    row(f"{sched['slow_clients']} slow readers (1/10 of real time): server RSS over the pool "
        "busy with two long streams", f"{grown:.0f} MB (peak {sched['rss_slow_max_mb']:.0f} "
        f"MB, {busy:.0f} MB busy; idle at start {sched['rss_idle_mb']:.0f} MB)",
        f"<= {SLOW_READERS_RSS_MB} MB", grown <= SLOW_READERS_RSS_MB)
    fast = statistics.median(sched["slow_fast_first"])
    row("... and a fast client's median first audio meanwhile / lone",
        f"{fast / lone_med:.2f} ({fast:.2f} s)", f"<= {LOADED_FIRST_TARGET}",
        fast / lone_med <= LOADED_FIRST_TARGET)
    long = sched["long"]
    row(f"lone stream, {sched['long_text_words']} words: least margin of a piece before "
        "playback reaches it", f"{long['worst_margin_s']:+.2f} s ({long['pieces']} pieces, "
        f"first audio {long['first_s']:.2f} s)", ">= 0 (no gap)", long["worst_margin_s"] >= 0)
    library_note = []
    if "library" in sched:
        library = sched["library"]
        seconds = _ratio(library["unary_s"], library["seconds"])
        row(f"lone unary, short sentence: wall time / kokoro-onnx {library['version']} "
            f"in-process, taking turns {len(library['seconds'])} times",
            f"{_rr(seconds)} ({_mm(library['unary_s'])} vs {_mm(library['seconds'])} s)",
            "<= 1.0", seconds[1] <= 1.0)
        library_note = [
            "",
            "Wall time for the same sentence, the gRPC hop included; kokoro-onnx runs in a "
            "process of its own, one synthesis after its warm-up, in turn with the service's "
            "unary call. By real-time factor the service starts behind: kokoro-onnx made "
            f"{library['audio_s']:.2f} s of audio (silence trimmed at both ends), the service "
            f"{sched['unary_audio_s']:.2f} s (sherpa-onnx shortens the model's pauses); "
            f"real-time factors {_mm(sched['unary_rtf'])} against {_mm(library['rtf'])}.",
        ]
    wer = sched.get("wer")
    if wer:
        row(f"recognizer WER over {wer['words']} words: stream's split (first clause, "
            "clauses) against unary's (whole sentences)",
            f"{wer['stream']:.3f} vs {wer['unary']:.3f}", "no clear rise (+0.03)",
            wer["stream"] <= wer["unary"] + 0.03)
    return [
        "## Scheduling: pieces, not requests",
        "",
        f"One server of the default shape ({shape}), scenarios "
        "one after the other. Lone client: the bench's short sentence streamed (first audio), "
        "next to the raw engine on the same sentence, and ten sentences streamed (audio s per "
        "wall s). Mixed: two clients stream the long text while a third streams the short "
        f"sentence {len(sched['mixed_short_first'])} times. Slow readers: "
        f"{sched['slow_clients']} clients stream the long text reading at a tenth of real time "
        f"for {sched['slow_window_s']:.0f} s while a fast client streams the short sentence. "
        "Gaps: every piece's arrival against the playback clock started by the first. "
        f"A lone unary call of the short sentence ran at real-time factor "
        f"{_mm(sched['unary_rtf'])}.",
        "",
        "| target | measured | limit | verdict |",
        "|---|---|---|---|",
        *rows,
        *library_note,
        "",
    ]


def _machine_section(results: dict[str, Any]) -> list[str]:
    """Memory of the default pool, the pool on one CPU, the first sentence's phrase cut."""
    rows: list[str] = []
    notes: list[str] = []

    def row(name: str, measured: str, limit: str, ok: bool) -> None:
        rows.append(f"| {name} | {measured} | {limit} | {'met' if ok else '**missed**'} |")

    memory = results.get("memory")
    if memory:
        idle = statistics.median(memory["idle_mb"])
        row(f"idle RSS of the default pool ({memory['pool']})", f"{_mm(memory['idle_mb'], 0)} MB",
            f"<= {IDLE_RSS_TARGET_MB} MB", idle <= IDLE_RSS_TARGET_MB)
        extra = statistics.median(memory["idle_one_more_mb"]) - idle
        row("each extra engine: idle RSS with one engine more, minus the default's",
            f"{extra:+.0f} MB ({_mm(memory['idle_one_more_mb'], 0)} MB)",
            f"<= {EXTRA_ENGINE_TARGET_MB} MB", extra <= EXTRA_ENGINE_TARGET_MB)
        grown = [after - before for after, before
                 in zip(memory["after_paragraph_mb"], memory["idle_mb"], strict=True)]
        row(f"RSS after streaming the {memory['paragraph_words']}-word paragraph, over idle",
            f"{statistics.median(grown):+.0f} MB (peak {_mm(memory['peak_paragraph_mb'], 0)} "
            "MB during it)", f"<= {AFTER_PARAGRAPH_TARGET_MB} MB",
            statistics.median(grown) <= AFTER_PARAGRAPH_TARGET_MB)
        notes.append(f"Memory: {len(memory['idle_mb'])} servers of each kind, started anew and "
                     "alternating; VmRSS 1 s after start-up, after the paragraph's stream "
                     "ended, and sampled every 0.25 s during it.")
    phrase = results.get("phrase")
    if phrase:
        first = _ratio(phrase["first_s"]["phrase"], phrase["first_s"]["whole"])
        row("lone stream, first sentence of "
            f"{min(phrase['first_sentence_chars'])}-{max(phrase['first_sentence_chars'])} "
            "characters without a comma: first audio, cut at a phrase / whole",
            f"{_rr(first)} ({_mm(phrase['first_s']['phrase'])} vs "
            f"{_mm(phrase['first_s']['whole'])} s)", f"<= {PHRASE_FIRST_TARGET}",
            first[1] <= PHRASE_FIRST_TARGET)
        wer = phrase["wer"]
        row(f"recognizer WER over {phrase['wer_words']} words: first sentences cut at a "
            "phrase against whole", f"{wer['phrase']:.3f} vs {wer['whole']:.3f}",
            f"no more than +{PHRASE_WER_RISE}", wer["phrase"] <= wer["whole"] + PHRASE_WER_RISE)
        margin = phrase["worst_margin_s"]
        row("... least margin of a piece before playback reaches it, over those texts",
            f"{margin['phrase']:+.2f} s (whole: {margin['whole']:+.2f} s)", ">= 0 (no gap)",
            margin["phrase"] >= 0)
        notes.append(
            f"Phrase cut: {len(phrase['texts'])} texts (first sentences of "
            f"{min(phrase['first_sentence_chars'])}-{max(phrase['first_sentence_chars'])} "
            f"characters, first pieces of {min(phrase['first_piece_chars'])}-"
            f"{max(phrase['first_piece_chars'])}) streamed on the default pool in the bench "
            "process (the server's scheduler and engines), with the first sentence cut at a "
            "phrase and whole, taking turns, "
            f"{len(phrase['first_s']['whole']) // len(phrase['texts'])} times each. The "
            f"server's own stream of the same texts: first audio {_mm(phrase['service_first_s'])}"
            f" s. The recognizer heard all {phrase['corpus_texts']} texts (of which "
            f"{phrase['cut']} are cut) under both.")
    one = results.get("one_cpu")
    if one:
        rate = _ratio(one["four_clients_throughput"], one["raw_throughput"])
        row(f"`taskset -c 0` ({one['pool']}): 4 clients, audio s per wall s / one raw "
            "single-thread engine", f"{_rr(rate)} ({_mm(one['four_clients_throughput'])} vs "
            f"{_mm(one['raw_throughput'])})", f">= {ONE_CPU_THROUGHPUT_TARGET}",
            rate[1] >= ONE_CPU_THROUGHPUT_TARGET)
        lone = _ratio(one["lone_first_s"], one["raw_first_s"])
        row("`taskset -c 0`: lone stream's first audio / the raw engine's on the sentence",
            f"{_rr(lone)} ({_mm(one['lone_first_s'])} vs {_mm(one['raw_first_s'])} s)",
            "<= 1.0", lone[1] <= 1.0)
        notes.append(f"One CPU: the server started with its defaults under `taskset -c 0`, "
                     "and the raw engine in a child process pinned to the same CPU, taking "
                     f"turns {len(one['raw_throughput'])} times; {one['requests']} short "
                     "sentences per throughput figure.")
    if not rows:
        return []
    return ["## The whole machine: memory, one CPU, the first sentence's phrase cut", "",
            "| target | measured | limit | verdict |", "|---|---|---|---|", *rows, "",
            *[f"{note}\n" for note in notes]]


def sections(results: dict[str, Any], names: Sequence[str]) -> list[str]:
    """The report of the sections measured alone (python -m bench --sections ...)."""
    lines = _scheduling_section(results) if "scheduling" in names else []
    return lines + _machine_section(results) + _lone_section(results) + (
        mixes.section(results.get("mixes"), _minutes(results, "mixes"))) + (
        _ssml_section(results) if "ssml" in names else []) + (
        soak.section(results.get("soak")) if "soak" in names else [])


def _ssml_section(results: dict[str, Any]) -> list[str]:
    """SSML against plain text (bench/ssml.py)."""
    if not results.get("ssml"):
        return []
    return ["## SSML: what markup costs plain text", "",
            "| target | measured (min-based / median-based) | limit | verdict |",
            "|---|---|---|---|", *ssml.targets(results["ssml"]), "",
            *ssml.section(results["ssml"], _minutes(results, "ssml"))]


def _threads_section(results: dict[str, Any]) -> list[str]:
    if "threads" not in results:
        return []
    lines = [
        "## Threads per engine and onnxruntime's spinning",
        "",
        "Raw sherpa-onnx engines on the PyPI onnxruntime, one fresh process per row (the "
        "spinning setting is made by the shim before sherpa-onnx loads): the short sentence "
        "alone on one engine, then every engine busy with the short-sentence requests at once. "
        "Spinning off makes an engine's extra threads sleep between operators instead of "
        "busy-waiting (the server's `--intra-op-spinning off`, its default).",
        "",
        "| engines x threads | spinning | lone sentence s (min / median) "
        "| audio s per wall s, all engines busy (min / median) |",
        "|---|---|---|---|",
    ]
    for r in results["threads"]:
        lines.append(f"| {r['engines']}x{r['threads']} | {'on' if r['spinning'] else 'off'} "
                     f"| {_mm(r['lone_s'])} | {_mm(r['throughput'])} |")
    return [*lines, ""]


def _runtime_table(runtimes: list[dict[str, Any]]) -> list[str]:
    lines = ["| runtime | onnxruntime | threads | CPU s per audio s (min / median) "
             "| wall s per audio s (median) |", "|---|---|---|---|---|"]
    for r in runtimes:
        lines.append(f"| {r['runtime']} | {r['version']} | {r['num_threads']} "
                     f"| {_mm(r['cpu_per_audio_s'], 3)} "
                     f"| {statistics.median(r['wall_per_audio_s']):.3f} |")
    return lines


def _startup_lines(startup: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = ["| runtime | start to serving, s (min / median) | of which choosing the runtime |",
             "|---|---|---|"]
    for runtime, row in startup.items():
        lines.append(f"| {runtime} | {_mm(row['ready_s'], 1)} | {_mm(row['choose_s'], 1)} |")
    if {"pypi", "bundled"} <= startup.keys():
        ratio = _ratio(startup["pypi"]["ready_s"], startup["bundled"]["ready_s"])
        lines += ["", f"pypi / bundled start-up time: {_rr(ratio)} (min-based / median-based)."]
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
    default = STREAM_POLICY
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


def _protocols_section(protocols: dict[str, Any] | None) -> list[str]:
    """A gRPC caller's first audio beside 4 gRPC or 4 HTTP streams (older results: none)."""
    if protocols is None:
        return []
    first = protocols["first_audio_s"]
    count = protocols["reps"] * protocols["probes"]
    return [
        "## gRPC and HTTP side by side",
        "",
        f"One server ({protocols['shape']}, the default pool) with "
        "`--http-port`. A gRPC client streams one sentence "
        f"(\"{protocols['probe_text']}\") while {protocols['background_streams']} other "
        "clients stream three sentences each in a loop, over gRPC or over the "
        "OpenAI-compatible HTTP API (the official `openai` SDK, 16-bit PCM); the probe is sent "
        "once they have filled the engines and the waiting line. Time to the probe's first "
        f"audio, min / median of {count} probes per row, seconds:",
        "",
        "| background | first audio of the gRPC probe | ratio to the gRPC background |",
        "|---|---|---|",
        f"| none | {_mm(first['idle'])} | |",
        f"| {protocols['background_streams']} gRPC streams | {_mm(first['grpc'])} | 1.00 |",
        f"| {protocols['background_streams']} HTTP streams | {_mm(first['http'])} "
        f"| {_rr(_ratio(first['http'], first['grpc']))} |",
        "",
        "The probe queues behind the background requests the same way whichever protocol "
        "they came in by: HTTP shares the engine pool and its waiting line, and its handlers "
        "run in the same event loop as grpc.aio.",
    ]


def _fronts_section(fronts: dict[str, Any] | None) -> list[str]:
    """First audio of one text through each front (older results: none)."""
    if fronts is None:
        return []
    first, names, same_kind = fronts["first_audio_s"], fronts["names"], fronts["same_kind"]
    rows = [f"| {name} | {_mm(first[mode])} | {names[same_kind[mode]]} | "
            f"{_rr(_ratio(first[mode], first[same_kind[mode]]))} |"
            for mode, name in names.items()]
    return [
        "## First audio through each front",
        "",
        f"One server ({fronts['shape']}, the default pool, with `--http-port` and "
        f"`--wyoming-port`), measured {fronts['date']}. The same three sentences "
        f"(\"{fronts['text'][:40]}...\") through each front that streams, one call at a time, "
        "each run to its end, the order rotated each repetition; timed at the client from the "
        "request's first byte on an open connection (Wyoming: a new connection per request, "
        "as Home Assistant makes, timed once open) to the first audio. Min / median of "
        f"{fronts['reps']} calls per row, seconds; ratio (min-based / median-based) to the "
        "gRPC method of the same kind, whole text in or text streamed in:",
        "",
        "| front | first audio | compared with | ratio |",
        "|---|---|---|---|",
        *rows,
        "",
        "Every front drives the same call (speech_call.py), so a front adds only its framing. "
        "The two kinds differ: a whole text is cut into pieces at once and they start in "
        "parallel on the pool's single-thread engines, while text streamed in reaches the "
        "scheduler a piece at a time, so its first piece, alone, goes to the solo engine "
        "(2 threads). Home Assistant's voice satellites give up after about 5 s without audio.",
    ]


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


def _replicas_section(replicas: dict[str, Any], cores: int) -> list[str]:
    runs = replicas["runs"]
    one = [run["throughput"] for run in runs["1"]]
    lines = [
        "## Replicas behind nginx",
        "",
        f"{replicas['requests']} streamed requests of the same sentence from "
        f"{replicas['clients']} clients, through nginx (deploy/nginx/tts-grpc.conf) to "
        "replicas of one single-threaded engine each, the two set-ups measured in turn in "
        "each repetition. Audio seconds produced per wall second (min / median):",
        "",
        "| replicas | audio s per wall s | against 1 replica |",
        "|---|---|---|",
    ]
    for count, count_runs in runs.items():
        rates = [run["throughput"] for run in count_runs]
        lines.append(f"| {count} | {_mm(rates)} | {_rr(_ratio(rates, one))} |")
    load = replicas.get("load_average_1min")
    load_note = (f" The 1-minute load average during these runs was {min(load):.1f} to "
                 f"{max(load):.1f}." if load else "")
    lines += ["", f"The replicas share this machine's {cores} cores, so the ratio is bounded by "
              "the cores, not by the design: on machines of their own, each replica adds its "
              f"own throughput.{load_note}"]
    rejected = sum(run["rejected"] for count_runs in runs.values() for run in count_runs)
    if rejected:
        lines += ["", f"{rejected} requests were refused with RESOURCE_EXHAUSTED."]
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
             [statistics.median(clauses[n]["policies"][STREAM_POLICY]["raw_first_piece"])
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


def _remeasured(results: dict[str, Any]) -> str:
    """Sections measured again after the whole run (`--sections`), and when."""
    partial = results.get("partial", {})
    if not partial:
        return ""
    return " Measured again alone, after the whole run: " + "; ".join(
        f"{section} on {run['date']} (load average at start {run['machine']['load_at_start']})"
        for section, run in partial.items()) + "."


def write(results: dict[str, Any], out: Path, chart_path: Path) -> None:
    chart(results, chart_path)
    machine = results["machine"]
    plan = results["plan"]
    runtime = results["raw_runtime"]
    chosen, reason = choose_shape(results["load"])
    default = results.get("scheduling", {}).get("shape", chosen)
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
        "build/bench-results.json." + _remeasured(results),
        "",
        f"![latency and throughput]({rel_chart})",
        "",
        "## Against the targets",
        "",
        *_targets(results),
        "",
        *_scheduling_section(results),
        *_machine_section(results),
        *_lone_section(results),
        *mixes.section(results.get("mixes"), _minutes(results, "mixes")),
        *_ssml_section(results),
        *soak.section(results.get("soak")),
        *_threads_section(results),
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
        *(["## Server start-up: the runtime self-check",
           "",
           "A server with 1 engine x 1 thread, started and stopped "
           f"{len(results['startup']['bundled']['ready_s'])} time(s) per runtime, "
           "alternating; times from its own log. Choosing pypi includes the self-check: a "
           "child process loads the model and synthesizes one word on that runtime before "
           "the server commits to it.",
           "",
           *_startup_lines(results["startup"]),
           ""] if "startup" in results else []),
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
        "Word error rates come from pocketsphinx (harness/speech.py) over all three texts, "
        "synthesized piece by piece by the raw engine under each policy (one run); \"off\" is "
        "whole sentences. The recognizer is far from perfect on synthetic speech, so only a "
        "clear rise would mean lost intelligibility.",
        "",
        *_live_section(results.get("live")),
        "## The cost of word timings",
        "",
        *_word_timings_section(results),
        "",
        *languages.section(results.get("languages")),
        "## Throughput: concurrent clients and pool shapes",
        "",
        f"{results['load']['requests_per_client']} streamed requests per client of one short "
        f"sentence (\"{results['load']['text']}\"), each client on its own channel and sending "
        "its next request when the last one ends. Audio seconds produced per wall second; the "
        f"raw engine column runs {results['load']['raw_requests']} requests on the same pool "
        "in-process (as many threads per engine), just before the server of that shape starts "
        "(a solo engine is the server's own: the raw side of 2x1+solo2 is 2x1). +soloN is a "
        "solo engine of N threads, which takes a piece only when every engine is idle and it "
        "is the only one waiting.",
        "",
        *_load_tables(results["load"]),
        "",
        *_protocols_section(results.get("protocols")),
        "",
        *_fronts_section(results.get("fronts")),
        "",
        *([*_replicas_section(results["replicas"], results["machine"]["cores"]), ""]
          if "replicas" in results else []),
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
        *_lone_client_note(results["load"], chosen, default),
    ]
    out.write_text("\n".join(lines), encoding="utf-8")


# Targets of the lone-caller and audio-cache issue (bench/lone.py).
LONE_POOL_TARGET = 1.05  # default pool / one 2-thread engine, for a lone caller
LONE_VS_UNARY_TARGET = 0.6  # a lone stream's first audio / the first sentence by unary
FOUR_CLIENTS_VS_ONE_BY_TWO_TARGET = 1.05
REPEAT_FIRST_TARGET_S = 0.05  # first audio of a sentence asked a second time
_NOT_MEASURED = "not measured"
# wyoming-bench's figures compared between the pools: (mode, measurement, name).
_TOOL_MODES = ("non_streaming", "streaming")
_TOOL_FIGURES = (("non_streaming", "ttft_s", "non-streaming synthesize: first audio"),
                 ("streaming", "ttft_s", "streaming session: first audio"),
                 ("non_streaming", "total_s", "non-streaming synthesize: total"),
                 ("streaming", "total_s", "streaming session: total"))


def _row(name: str, measured: str, limit: str, ok: bool | None) -> str:
    verdict = _NOT_MEASURED if ok is None else "met" if ok else "**missed**"
    return f"| {name} | {measured} | {limit} | {verdict} |"


def _round_means(runs: Sequence[dict[str, Any]], mode: str, key: str) -> list[float]:
    """One mean per wyoming-bench run (the mean its report prints)."""
    return [statistics.fmean(run[mode][key]) for run in runs]


def _pooled(runs: Sequence[dict[str, Any]], mode: str, key: str) -> tuple[float, float]:
    """Mean and p95 (linear interpolation, as wyoming-bench computes it) over every run."""
    values = [value for run in runs for value in run[mode][key]]
    return statistics.fmean(values), float(np.percentile(values, 95))


def _lone_targets(results: dict[str, Any]) -> list[str]:
    """The rows of the lone-caller targets (bench/lone.py); none for sections not run."""
    rows = []
    tool = results.get("wyoming_bench")
    if tool is not None and not tool.get("installed"):
        rows.append(_row("wyoming-bench, default pool / 1x2 pool", "wyoming-bench not "
                         "installed", f"<= {LONE_POOL_TARGET}", None))
    elif tool is not None:
        for name, rounds in tool["sets"].items():
            for mode, key, figure in _TOOL_FIGURES:
                pair = _ratio(_round_means(rounds["default"], mode, key),
                              _round_means(rounds["1x2"], mode, key))
                rows.append(_row(
                    f"wyoming-bench {tool['version']}, {name}, {figure} mean: default pool / "
                    "1x2 pool", f"{_rr(pair)} ({_pooled(rounds['default'], mode, key)[0]:.2f} "
                    f"vs {_pooled(rounds['1x2'], mode, key)[0]:.2f} s)",
                    f"<= {LONE_POOL_TARGET}", pair[1] <= LONE_POOL_TARGET))
    lone = results.get("lone")
    if lone:
        chars = f"{min(lone['first_sentence_chars'])}-{max(lone['first_sentence_chars'])}"
        default, one = lone["first_s"]["default"], lone["first_s"]["1x2"]
        pair = _ratio(default, one)
        rows.append(_row(f"lone gRPC stream, first sentence of {chars} characters without a "
                         "comma: first audio, default pool / 1x2 pool",
                         f"{_rr(pair)} ({_mm(default)} vs {_mm(one)} s)",
                         f"<= {LONE_POOL_TARGET}", pair[1] <= LONE_POOL_TARGET))
        pair = _ratio(default, lone["unary_s"])
        rows.append(_row("... its first audio on the default pool / that first sentence whole "
                         "by unary Synthesize there", f"{_rr(pair)} ({_mm(default)} vs "
                         f"{_mm(lone['unary_s'])} s)", f"<= {LONE_VS_UNARY_TARGET}",
                         pair[1] <= LONE_VS_UNARY_TARGET))
        four = lone["four_clients"]
        pair = _ratio(four["default"], four["1x2"])
        rows.append(_row(f"{lone['clients']} clients, short sentences, audio s per wall s: "
                         "default pool / 1x2 pool, taking turns",
                         f"{_rr(pair)} ({_mm(four['default'])} vs {_mm(four['1x2'])})",
                         f">= {FOUR_CLIENTS_VS_ONE_BY_TWO_TARGET}",
                         pair[1] >= FOUR_CLIENTS_VS_ONE_BY_TWO_TARGET))
    load = results.get("load", {}).get("service", {})
    default_shape = results.get("scheduling", {}).get("shape")
    if default_shape in load and "1x2" in load and default_shape != "1x2":
        cells = load[default_shape]["cells"], load["1x2"]["cells"]
        if all(TARGET_CLIENTS in c for c in cells):
            rate = (cells[0][TARGET_CLIENTS]["throughput"]
                    / cells[1][TARGET_CLIENTS]["throughput"])
            rows.append(_row(f"throughput table: 4 clients on {default_shape} (the default) / "
                             "on 1x2, one shape after the other", f"{rate:.2f}",
                             f">= {FOUR_CLIENTS_VS_ONE_BY_TWO_TARGET}",
                             rate >= FOUR_CLIENTS_VS_ONE_BY_TWO_TARGET))
    repeats = results.get("repeats")
    if repeats:
        for front, name in (("grpc", "gRPC SynthesizeStream"), ("wyoming", "Wyoming synthesize")):
            label = f"a sentence asked twice through {name}: the second one's first audio"
            if not repeats["supported"]:
                rows.append(_row(label, "not measured: the server has no --audio-cache-mb",
                                 f"<= {REPEAT_FIRST_TARGET_S} s", None))
                continue
            cell = repeats["twice"]["on"][front]
            off = repeats["twice"]["off"][front]["second_s"]
            second = statistics.median(cell["second_s"])
            rows.append(_row(label, f"{_mm(cell['second_s'], 3)} s (the first "
                             f"{_mm(cell['first_s'])} s; cache off, the second {_mm(off)} s)",
                             f"<= {REPEAT_FIRST_TARGET_S} s", second <= REPEAT_FIRST_TARGET_S))
    return rows



def _memory_targets(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory")
    if not memory:
        return []
    idle = statistics.median(memory["idle_mb"])
    extra = statistics.median(memory["idle_one_more_mb"]) - idle
    return [_row(f"idle RSS of the default server ({memory['pool']})",
                 f"{_mm(memory['idle_mb'], 0)} MB", f"<= {IDLE_RSS_TARGET_MB} MB",
                 idle <= IDLE_RSS_TARGET_MB),
            _row("one more engine: idle RSS with one engine more, minus the default's",
                 f"{extra:+.0f} MB", f"<= {EXTRA_ENGINE_TARGET_MB} MB",
                 extra <= EXTRA_ENGINE_TARGET_MB)]


def _minutes(results: dict[str, Any], section: str) -> str:
    """How long a section took, when it was measured alone or its duration was kept."""
    run = results.get("partial", {}).get(section)
    if run:
        return f" ({run['duration_s'] / 60:.1f} min, measured alone on {run['date']})"
    seconds = results.get("durations_s", {}).get(section)
    return f" ({seconds / 60:.1f} min)" if seconds else ""


def _tool_table(runs_by_name: dict[str, Sequence[dict[str, Any]]], label: str) -> list[str]:
    lines = []
    for name, runs in runs_by_name.items():
        cells = []
        for mode in _TOOL_MODES:
            first_mean, first_p95 = _pooled(runs, mode, "ttft_s")
            total_mean, _ = _pooled(runs, mode, "total_s")
            cells.append(f"{first_mean:.2f} / {first_p95:.2f} | {total_mean:.2f}")
        lines.append(f"| {label} | {name} | {' | '.join(cells)} |")
    return lines



def _lone_section(results: dict[str, Any]) -> list[str]:
    """A lone caller and repeated phrases: every section of bench/lone.py that was run."""
    if not any(name in results for name in ("wyoming_bench", "lone", "repeats",
                                             "first_language")):
        return []
    lines = ["## A lone caller, repeated phrases, languages on first use", "",
             "| target | measured (min-based / median-based) | limit | verdict |",
             "|---|---|---|---|", *_lone_targets(results), ""]
    tool = results.get("wyoming_bench")
    if tool and tool.get("installed"):
        rounds = tool["rounds"]
        pools = tool["pools"]
        lines += [
            f"### wyoming-bench {tool['version']}{_minutes(results, 'wyoming_bench')}", "",
            "The ecosystem's Wyoming benchmark, run as the tool itself (`wyoming-bench tts "
            "127.0.0.1:PORT --rounds 1 -v`, its warm-up and nonces as by default) against "
            f"`--wyoming-port` of two fresh servers: the default pool ({pools['default']}) and "
            f"one engine of 2 threads ({pools['1x2']}), {rounds} runs each, taking turns. Its "
            "four default texts (1-4 sentences), then ours: "
            + "; ".join(f'"{t[:40]}..."' if len(t) > 40 else f'"{t}"'
                        for t in tool["own_texts"])
            + ". Seconds over every run (ratios above: of the means of each run, min-based / "
            "median-based):", "",
            "| texts | server | non-streaming first audio mean / p95 | non-streaming total "
            "mean | streaming first audio mean / p95 | streaming total mean |",
            "|---|---|---|---|---|---|",
        ]
        for name, runs in tool["sets"].items():
            lines += _tool_table(runs, name)
        cache = tool.get("cache", {})
        if cache.get("runs"):
            lines += _tool_table({f"cache on ({cache['mb']} MB)": cache["runs"]["on"],
                                  "cache off": cache["runs"]["off"]},
                                 "default texts, `--no-unique`")
            pairs = []
            for mode, key, figure in _TOOL_FIGURES:
                pair = _ratio(_round_means(cache["runs"]["on"], mode, key),
                              _round_means(cache["runs"]["off"], mode, key))
                pairs.append(f"{figure} mean {_rr(pair)}")
            ratios = ", ".join(pairs)
            lines += ["", f"`--no-unique`: the same texts in each of "
                      f"{len(cache['runs']['on'])} runs (the tool's warm-up asks the first "
                      "one before it measures), on two more fresh servers of "
                      f"the default pool, with `--audio-cache-mb {cache['mb']}` and "
                      "`--audio-cache-mb 0`, taking turns. Cache on / off (min-based / "
                      f"median-based): {ratios}."]
        else:
            lines += ["", "`--no-unique` with the audio cache on and off: not measured (the "
                      "server has no --audio-cache-mb)."]
        lines.append("")
    lone = results.get("lone")
    if lone:
        lines += [
            f"### A lone gRPC stream, 4 clients{_minutes(results, 'lone')}", "",
            f"Two fresh servers: the default pool ({lone['pools']['default']}) and one engine "
            f"of 2 threads ({lone['pools']['1x2']}). {len(lone['texts'])} texts whose first "
            f"sentence has {min(lone['first_sentence_chars'])}-"
            f"{max(lone['first_sentence_chars'])} characters and no comma, each streamed by "
            "SynthesizeStream to its end on both servers, and its first sentence alone by "
            "unary Synthesize on the default pool, the three in turn; "
            f"{len(lone['unary_s']) // len(lone['texts'])} times each. Then 4 clients with "
            f"{lone['requests_per_client']} streamed calls each of \"{lone['load_text']}\", "
            f"the servers taking turns {len(lone['four_clients']['default'])} times.", "",
            "| | default pool | 1x2 pool | unary, default pool |", "|---|---|---|---|",
            f"| first audio, s (min / median) | {_mm(lone['first_s']['default'])} "
            f"| {_mm(lone['first_s']['1x2'])} | {_mm(lone['unary_s'])} (whole) |",
            f"| 4 clients, audio s per wall s (min / median) "
            f"| {_mm(lone['four_clients']['default'])} | {_mm(lone['four_clients']['1x2'])} "
            "| |", ""]
    repeats = results.get("repeats")
    if repeats:
        configs = repeats["configs"]
        names = {"on": f"cache on ({repeats['mb']} MB)",
                 "off": "cache off" if repeats["supported"] else "no cache (the server has no "
                 "--audio-cache-mb)"}
        lines += [
            f"### Repeated phrases{_minutes(results, 'repeats')}", "",
            f"Fresh servers of the default pool ({repeats['pool']}) with "
            + (f"`--audio-cache-mb {repeats['mb']}` and `--audio-cache-mb 0`"
               if repeats["supported"] else "their defaults (no cache to turn on)")
            + f". {repeats['zipf_calls']} streamed calls, one at a time, of {repeats['phrases']} "
            "assistant phrases (\"Turned on the kitchen lights.\", \"Sorry, I didn't "
            "understand.\"...) drawn with weights 1/rank (seed "
            f"{repeats['seed']}, {repeats['zipf_distinct']} distinct: the rest repeat an "
            f"earlier one), in blocks of {repeats['block']} the servers take turns with. CPU: "
            "utime + stime of the server process (/proc/PID/stat) over the calls.", "",
            "| server | first audio, mean | min / median | mean, phrases asked before "
            "| mean, the others | server CPU s per call |",
            "|---|---|---|---|---|---|"]
        before = repeats["zipf_asked_before"]
        for config in configs:
            zipf = repeats["zipf"][config]
            again = [s for s, seen in zip(zipf["first_s"], before, strict=True) if seen]
            new = [s for s, seen in zip(zipf["first_s"], before, strict=True) if not seen]
            lines.append(f"| {names[config]} | {statistics.fmean(zipf['first_s']):.3f} "
                         f"| {_mm(zipf['first_s'], 3)} "
                         f"| {statistics.fmean(again) if again else float('nan'):.3f} "
                         f"| {statistics.fmean(new):.3f} "
                         f"| {zipf['cpu_s'] / zipf['calls']:.3f} |")
        if set(configs) == {"on", "off"}:
            on, off = repeats["zipf"]["on"], repeats["zipf"]["off"]
            lines += ["", "Cache on / off: mean first audio "
                      f"{statistics.fmean(on['first_s']) / statistics.fmean(off['first_s']):.2f}"
                      ", server CPU per call "
                      f"{(on['cpu_s'] / on['calls']) / (off['cpu_s'] / off['calls']):.2f}."]
        lines += ["", "A sentence asked twice in a row (a new one each time), first audio in "
                  "seconds (min / median):", "",
                  "| server | front | the first time | the second time |",
                  "|---|---|---|---|"]
        for config in configs:
            for front in ("grpc", "wyoming"):
                cell = repeats["twice"][config][front]
                lines.append(f"| {names[config]} | {front} | {_mm(cell['first_s'], 3)} "
                             f"| {_mm(cell['second_s'], 3)} |")
        lines.append("")
    first = results.get("first_language")
    if first:
        loaded = first["loaded_at_start"]
        when = ("at start-up on every server" if all(loaded) else
                "on its first request on every server" if not any(loaded) else
                "at start-up on some servers only")
        load_s = [s for s in first["load_s"] if s is not None]
        lines += [
            f"### A language on first use{_minutes(results, 'first_language')}", "",
            f"{len(first['first_s'])} fresh servers of the default pool ({first['pool']}) "
            + ("with `--audio-cache-mb 0` (the repeat is the same request) "
               if first["cache_off"] else "")
            + "and the default preload"
            + ("" if first["preload_option"] else " (this server has no --preload-voices: "
               "it loads every front end but Chinese at start-up)")
            + f". On each: an English sentence (engines warm), then a {first['language']} one "
            f"with voice {first['voice']} (\"{first['text']}\"), then the same again; "
            "SynthesizeStream, first audio in seconds (min / median). No target.", "",
            "| request | first audio |", "|---|---|",
            f"| English, the server's first request | {_mm(first['english_first_s'])} |",
            f"| {first['language']}, its first request | {_mm(first['first_s'])} |",
            f"| {first['language']}, the same again | {_mm(first['again_s'])} |",
            "",
            f"The {first['language']} front end loaded {when}"
            + (f" ({_mm(load_s, 1)} s by the server's log)" if load_s else "")
            + f"; server RSS {_mm(first['rss_idle_mb'], 0)} MB idle, "
            f"{_mm(first['rss_after_mb'], 0)} MB after the three requests.", ""]
    return lines

