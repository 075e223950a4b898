"""The GPU's power and SM clock while a benchmark runs: nvidia-smi sampled in the background (read only; it sets
nothing), for `step_time.py --power`.

Why: a lent H100 ran `fast_1gpu`'s step at its 700 W power cap, the SM clock 1,890 MHz median of 1,980 (part 50). On
such a GPU two changes of equal kernel time can give different steps: the one that draws less leaves clock to the
rest. Energy per step (mean power over a timed window x its wall time / its steps) tells them apart.

    with PowerSampler.for_device(uuid) as power:
        ... timed work ...
    power.summary()  # {"samples", "median_w", "mean_w", "median_sm_mhz", "power_capped", "seconds"} or None
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time

# power.draw.instant where the driver has it (power.draw may be a one-second average); the software power cap as a
# clock-event reason (Active / Not Active)
FIELDS = ("power.draw.instant", "clocks.sm", "clocks_event_reasons.sw_power_cap")
FALLBACK_FIELDS = ("power.draw", "clocks.sm", "clocks_event_reasons.sw_power_cap")


def nvidia_smi_command(fields: tuple[str, ...], device: str | None, period_ms: int | None) -> list[str]:
    """nvidia-smi's query of `fields` on `device` (all GPUs if None): every period_ms, or once if None."""
    cmd = ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]
    return cmd + ([f"-lms={period_ms}"] if period_ms else []) + ([f"--id={device}"] if device else [])


def parse_sample(line: str) -> tuple[float, float, bool] | None:
    """'652.31, 1890, Active' -> (watts, MHz, power-capped), or None for a line that is not a sample."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 3:
        return None
    try:
        return float(parts[0]), float(parts[1]), parts[2].lower() == "active"
    except ValueError:  # "[N/A]", an error message
        return None


def summarize(samples: list[tuple[float, float, bool]], seconds: float) -> dict | None:
    """The samples of one window: median and mean power (W), median SM clock (MHz), the fraction power-capped."""
    if not samples:
        return None
    watts = [w for w, _, _ in samples]
    return dict(samples=len(samples), median_w=statistics.median(watts), mean_w=statistics.mean(watts),
                median_sm_mhz=statistics.median(c for _, c, _ in samples),
                power_capped=sum(capped for _, _, capped in samples) / len(samples), seconds=seconds)


def pick_fields(device: str | None) -> tuple[str, ...] | None:
    """The fields this nvidia-smi answers (a one-shot query of each set), or None without a usable nvidia-smi."""
    for fields in (FIELDS, FALLBACK_FIELDS):
        try:
            done = subprocess.run(nvidia_smi_command(fields, device, None), capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and parse_sample(lines[0]):
            return fields
    return None


class PowerSampler:
    """Runs `command` (nvidia-smi sampling, or a stand-in in tests) while the `with` block runs and keeps the samples
    it prints; `summary()` then describes the block. command None: no sampling (summary() is None)."""

    def __init__(self, command: list[str] | None):
        self.command, self.samples, self.seconds = command, [], 0.0
        self._proc = self._reader = None

    @classmethod
    def for_device(cls, device: str | None = None, period_ms: int = 50) -> PowerSampler:
        """nvidia-smi on `device` (a UUID or index) every period_ms, with the fields it answers; none if it answers
        none (no nvidia-smi, no such GPU)."""
        fields = pick_fields(device)
        return cls(None if fields is None else nvidia_smi_command(fields, device, period_ms))

    def __enter__(self) -> PowerSampler:
        self.samples, self._t0 = [], time.monotonic()
        if self.command is not None:
            self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            sample = parse_sample(line)
            if sample is not None:
                self.samples.append(sample)

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self._t0
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._reader.join(timeout=10)

    def summary(self) -> dict | None:
        return summarize(self.samples, self.seconds)
