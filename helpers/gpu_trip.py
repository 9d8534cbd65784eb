"""Take the project to a fresh GPU machine and back: `pack` here, `run` there (docs/gpu.md).

    python -m helpers.gpu_trip pack [--dry-run]   # here: data archive + missing wheels into .device/, size check
    python3 helpers/gpu_trip.py run --seeds 3     # there: install, unpack, train, report, one output folder

The GPU machine reaches no network and its image lacks the notebook tooling (papermill, nbconvert, ipykernel,
grad-cam, ...), so `pack` brings wheels for exactly those packages (the closure of the project's requirements,
less what the image holds) and the CIFAR-10 archive. `run` starts as a plain script because `helpers` itself
imports IPython, which only the wheels bring; it installs them, then goes on as `python -m helpers.gpu_trip`.
Only the standard library is imported at the top of this file, for that reason.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVICE_DIR = ".device"                    # ignored by git; travels as `carry`
OUT_DIR = "gpu-out"                       # the output folder where $OUT is unset
LIMIT = 64 * 2**20                        # what may travel: the checkout plus carried files
SITE = "/tmp/site"                        # where `run` installs the wheels
BUDGET_S = 540                            # one device command may run 600 s; the rest is margin
REPORT_RESERVE_S = 240                    # executing and exporting the notebooks when every run is stored
ASSEMBLY_RESERVE_S = 30
SMALL_FILES = ("config.json", "history.csv", "metrics.json", "env.json", "train.log")
EXCLUDED_ROOTS = {"jupyterlab"}           # an editor; executing the notebooks does not need it
PLATFORMS = ["manylinux_2_%d_x86_64" % n for n in range(17, 40)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]
# The GPU image's packages (helpers/gpu_image_packages.txt); alias: a package that provides the same import.
IMAGE_PACKAGES = {line.strip() for line in (ROOT / "helpers" / "gpu_image_packages.txt").read_text().splitlines()
                  if line.strip() and not line.startswith("#")}
ALIASES = {"opencv-python": "opencv-python-headless"}
# Issue 10's measurement (commit 62b361d, H200, fp32 eager, profile full): one run alone trained 14,550
# images/s; six runs at once gave 2.6x the throughput of one. estimate_seconds(images_per_s=...) takes a faster step.
EAGER_IMAGES_PER_S = 14_550
CONCURRENCY_GAIN = 2.6
# Arithmetic per training image (forward and backward): issue 10's 0.11 GFLOP for the ImageNet stem on 32x32
# images; the CIFAR stem keeps 32x32 maps, about 16x that (helpers.cam.cifar_stem_config). SUSTAINED_FLOPS is
# an assumption, not a reading: about an eighth of the H100's dense bf16 peak, for fp32/TF32 convolutions.
TRAIN_FLOPS = {"imagenet": 0.11e9, "cifar": 16 * 0.11e9}
SUSTAINED_FLOPS = 100e12


class TripError(RuntimeError):
    """The trip cannot go on; the message says what is missing and how to provide it."""


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# ---- pack (here) ------------------------------------------------------------------------------

def find_archive() -> Path:
    """Return the CIFAR-10 archive: $CIFAR10_ARCHIVE, else ../shared/data/cifar10-jpeg.tar.xz beside the project."""
    given = os.environ.get("CIFAR10_ARCHIVE")
    path = Path(given) if given else ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz"
    if not path.is_file():
        raise TripError(f"no data archive at {path}; set CIFAR10_ARCHIVE to cifar10-jpeg.tar.xz "
                        "(`tar -cJf cifar10-jpeg.tar.xz cifar10-jpeg` of the ImageFolder tree)")
    return path


def project_requirements() -> list[str]:
    """Return the requirements that executing the notebooks needs: dependencies and the `notebooks` extra."""
    import tomllib
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + meta["optional-dependencies"]["notebooks"]
    return [r for r in reqs if _canon(r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip())
            not in EXCLUDED_ROOTS]


def needed_packages(requirements=None, image=IMAGE_PACKAGES) -> list[tuple[str, str | None]]:
    """Return [(name, version)] of every package the image lacks in the requirements' closure (Python 3.12, Linux).

    Versions are this environment's (the ones the project is tested with); None where it lacks the package.
    """
    import importlib.metadata as md
    from packaging.requirements import Requirement
    env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    stack = [Requirement(r) for r in (requirements if requirements is not None else project_requirements())]
    found, seen = {}, set()
    while stack:
        req = stack.pop()
        name = _canon(ALIASES.get(_canon(req.name), req.name))
        if name in image or (name, tuple(sorted(req.extras))) in seen:
            continue  # the image's own packages bring their own needs
        seen.add((name, tuple(sorted(req.extras))))
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            found.setdefault(name, None)
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            sub = Requirement(text)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in extras):
                stack.append(sub)
    return sorted(found.items())


def travelling_bytes() -> int:
    """Return the size of what a device call sends besides carried paths: tracked and unignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True)
    return sum((ROOT / p).stat().st_size for p in out.stdout.decode().split("\0") if p and (ROOT / p).is_file())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheels(packages, dest: Path):
    """Fetch manylinux/pure wheels of `packages` for CPython 3.12 into `dest` with pip (no dependencies).

    A package published only as source (grad-cam) is built here into a wheel, which must then be pure Python.
    """
    specs = [f"{n}=={v}" if v else n for n, v in packages]
    pip = [sys.executable, "-m", "pip"]
    binary = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
              "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest)]
    if subprocess.run([*binary, *specs]).returncode == 0:
        return
    for spec in specs:  # find which have no wheel
        if subprocess.run([*binary, spec], capture_output=True).returncode == 0:
            continue
        before = set(dest.glob("*.whl"))
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(dest), spec], check=True)
        built = set(dest.glob("*.whl")) - before
        if not built or not all(p.name.endswith("-none-any.whl") for p in built):
            raise TripError(f"{spec} has no wheel for CPython 3.12 on manylinux, and building it gave {sorted(built)}")


def device_command(seeds: int, tune: bool) -> str:
    """Return the command the device `run` call executes."""
    return f"python3 helpers/gpu_trip.py run --seeds {seeds}" + (" --tune" if tune else "")


def pack(dest: Path, seeds: int = 3, dry_run: bool = False, tune: bool = False, download=download_wheels) -> dict:
    """Put the data archive and the missing wheels into `dest`, check the size, print the device call; return the plan."""
    archive, packages = find_archive(), needed_packages()
    wheels = dest / "wheels"
    plan = {"archive": {"source": str(archive), "bytes": archive.stat().st_size},
            "packages": [f"{n}=={v}" if v else n for n, v in packages], "checkout_bytes": travelling_bytes()}
    print(f"data archive: {archive} ({archive.stat().st_size / 2**20:.1f} MiB)")
    print(f"wheels for the {len(packages)} packages the GPU image lacks: {', '.join(plan['packages'])}")
    configs = study_configs("full", seeds, tune)
    plan["runs"], plan["eager_gpu_s"] = len(configs), round(estimate_seconds(configs))
    print(f"the trip trains {len(configs)} runs: about {plan['eager_gpu_s'] / 60:.0f} GPU minutes at the eager step's "
          f"measured speed ({EAGER_IMAGES_PER_S:,} images/s alone, {CONCURRENCY_GAIN}x with runs at once), "
          f"against a budget of {BUDGET_S / 60:.0f} minutes a call")
    if dry_run:
        known = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
        known_bytes = sum(p.stat().st_size for p in known)
        print(f"dry run: nothing fetched. Known sizes: archive {archive.stat().st_size / 2**20:.1f} MiB, checkout "
              f"{plan['checkout_bytes'] / 2**20:.1f} MiB, wheels already in {wheels}: {len(known)} of "
              f"{len(packages)} ({known_bytes / 2**20:.1f} MiB); limit {LIMIT / 2**20:.0f} MiB")
    else:
        wheels.mkdir(parents=True, exist_ok=True)
        target = dest / archive.name
        if not target.exists() or target.stat().st_size != archive.stat().st_size:
            shutil.copyfile(archive, target)
        for old in wheels.glob("*.whl"):
            old.unlink()  # one version of each: two stop the whole install
        download(packages, wheels)
        plan["wheel_bytes"] = sum(p.stat().st_size for p in wheels.glob("*.whl"))
        plan["carried_bytes"] = sum(p.stat().st_size for p in dest.rglob("*")
                                    if p.is_file() and dest / "data" not in p.parents)  # data: unpacked there
        plan["archive"]["sha256"] = _sha256(target)
        total = plan["carried_bytes"] + plan["checkout_bytes"]
        print(f"carried {plan['carried_bytes'] / 2**20:.1f} MiB (wheels {plan['wheel_bytes'] / 2**20:.1f} MiB) "
              f"+ checkout {plan['checkout_bytes'] / 2**20:.1f} MiB = {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f}")
        if total > LIMIT:
            raise TripError(f"{total / 2**20:.1f} MiB would travel; the device takes at most {LIMIT / 2**20:.0f} MiB")
        (dest / "manifest.json").write_text(json.dumps(plan, indent=2) + "\n")
    print("device call:")
    print(json.dumps({"command": device_command(seeds, tune), "carry": [DEVICE_DIR], "timeout_s": 600}))
    return plan


# ---- the study's runs, and what they cost -----------------------------------------------------------

def study_configs(profile: str = "full", seeds: int = 3, tune: bool = False) -> list:
    """Return the runs notebooks 01-05 load, built as they build them, every experiment's first seed first.

    Should a notebook change its runs, it trains the missing ones itself; this list only lets them train at once.
    """
    import helpers as h
    base = h.make_config(profile=profile)
    experiments = [base] + [h.variant(base, recipe=r) for r in ("flip_rotate", "crop", "crop_flip", "normalize")]
    experiments.append(h.variant(base, recipe="normalize", mismatch=True, lr=0.5))  # 03's fix_lr default
    experiments.append(h.make_config(profile=profile, recipe="fast", validation=h.default_validation(base.train_size)))
    configs = [c for s in h.seed_list(base.seed, seeds, profile) for c in
               [h.variant(e, seed=s) for e in experiments]]
    configs.insert(len(experiments), h.cifar_stem_config(base))  # 04's CIFAR-stem model: one seed
    if tune:
        configs += tuning_configs(profile)
    return configs


def tuning_configs(profile: str = "full") -> list:
    """Return variants of the fast recipe scored on the validation split (issue 10 item 5), one seed each."""
    import helpers as h
    base = h.make_config(profile=profile)
    hold = h.default_validation(base.train_size)
    return [h.make_config(profile=profile, recipe="fast", validation=hold, lr=lr, epochs=e)
            for e in (10, 15) for lr in (0.1, 0.4)]


def estimate_seconds(configs, images_per_s: float = EAGER_IMAGES_PER_S, gain: float = CONCURRENCY_GAIN) -> float:
    """Return the GPU seconds to train `configs`: the launch-bound time (`images_per_s` per run alone, `gain`
    times that with runs at once) or the arithmetic at SUSTAINED_FLOPS, whichever is longer."""
    images = flops = 0.0
    for c in configs:
        seen = c.epochs * ((c.train_size or 50_000) - c.validation)
        images += seen
        flops += seen * TRAIN_FLOPS[c.stem]
    return max(images / (images_per_s * gain), flops / SUSTAINED_FLOPS)


# ---- run (there) --------------------------------------------------------------------------------

def install_wheels(src: Path, site: str = SITE) -> bool:
    """Install the carried wheels into `site` (once per manifest); return whether there were any."""
    wheels = sorted((src / "wheels").glob("*.whl"))
    if not wheels:
        return False
    stamp = Path(site) / ".installed"
    key = hashlib.sha256("\n".join(p.name for p in wheels).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == key:
        return True
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", site, *map(str, wheels)], check=True)
    stamp.write_text(key)
    return True


def trip_env(site: str = SITE) -> dict:
    """Return this environment with the installed wheels and the project importable, and nbconvert's templates found."""
    path = [site, str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    jupyter = [str(Path(site) / "share" / "jupyter")] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "JUPYTER_PATH": os.pathsep.join(jupyter)}


def unpack_data(src: Path) -> Path:
    """Unpack the carried archive into <src>/data once; return the ImageFolder root."""
    data = src / "data"
    root = data / "cifar10-jpeg"
    if not (data / ".unpacked").exists():
        archive = next(src.glob("*.tar.xz"), None)
        if archive is None:
            raise TripError(f"no *.tar.xz data archive in {src}; run `python -m helpers.gpu_trip pack` first")
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(data, filter="data")
        (data / ".unpacked").write_text(archive.name)
    return root


def run_phase(name: str, cmd: list, env: dict, timeout: float, log) -> str:
    """Run one phase's command, its output echoed and logged; kill its process group at `timeout`; return its status."""
    if timeout <= 0:
        return "skipped: no time left"
    print(f"== {name}: {' '.join(cmd)} (at most {timeout:.0f} s)", file=log, flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own group: the workers die with it at the deadline
    import threading

    def pump():
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        sys.stdout.flush()
        log.flush()
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
        status = "ok" if code == 0 else f"failed: exit code {code}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # at most one epoch per run is lost: the store resumes the rest
        proc.wait()
        status = f"stopped at its deadline ({timeout:.0f} s)"
    reader.join(timeout=5)
    print(f"== {name}: {status} after {time.monotonic() - started:.0f} s", file=log, flush=True)
    return status


def assemble(out: Path, report_dir: Path, runs_dir: Path, status: dict) -> list[Path]:
    """Write the trip's output folder: report.tar.gz, summary.txt, runs.tar.gz (no checkpoints), trip.json."""
    from .runs import runs_summary
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if (report_dir / "index.html").exists():
        with tarfile.open(out / "report.tar.gz", "w:gz") as tar:
            tar.add(report_dir, arcname="report")
        files.append(out / "report.tar.gz")
    summary = runs_summary(runs_dir)
    (out / "summary.txt").write_text((summary.to_string(index=False) if len(summary) else "no finished run") + "\n")
    files.append(out / "summary.txt")
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:
        for folder in sorted(p for p in Path(runs_dir).glob("*") if p.is_dir()) if Path(runs_dir).is_dir() else []:
            for name in SMALL_FILES:
                if (folder / name).is_file():
                    tar.add(folder / name, arcname=f"runs/{folder.name}/{name}")
    files.append(out / "runs.tar.gz")
    status["finished_runs"] = len(summary)
    status["files"] = {p.name: p.stat().st_size for p in files}
    (out / "trip.json").write_text(json.dumps(status, indent=2, default=str) + "\n")
    return files + [out / "trip.json"]


def notebooks_declare(name: str) -> bool:
    """Return whether some notebook declares the parameter `name` (the report rejects undeclared ones)."""
    from .report import declared_parameters, find_notebooks
    return any(name in declared_parameters(nb) for nb in find_notebooks(ROOT / "notebooks"))


def run_trip(src: Path, out: Path, seeds: int = 3, budget_s: float = BUDGET_S, tune: bool = False,
             profile: str = "full", report_dir: Path | None = None, site: str = SITE) -> int:
    """Install, unpack, pre-train every run at once, build the report, and fill `out`; return the exit code."""
    from .runs import runs_root
    deadline = time.monotonic() + budget_s
    out.mkdir(parents=True, exist_ok=True)
    report_dir = report_dir or ROOT / "report"
    status = {"profile": profile, "seeds": seeds, "tune": tune, "budget_s": budget_s, "phases": {}}
    with open(out / "trip.log", "a") as log:
        try:
            t = time.monotonic()
            install_wheels(src, site)
            data = unpack_data(src)
            status["phases"]["setup"] = f"ok after {time.monotonic() - t:.0f} s"
            env = {**trip_env(site), "CIFAR10_DIR": str(data), "MPLBACKEND": "Agg", "PROFILE": profile,
                   "PYTHONUNBUFFERED": "1"}
            status["expected_gpu_s_eager"] = round(estimate_seconds(study_configs(profile, seeds, tune)))
            left = deadline - time.monotonic() - REPORT_RESERVE_S - ASSEMBLY_RESERVE_S
            pre = [sys.executable, "-m", "helpers.gpu_trip", "pretrain", "--profile", profile, "--seeds", str(seeds)]
            status["phases"]["pretrain"] = run_phase("pretrain", pre + (["--tune"] if tune else []), env, left, log)
            if status["phases"]["pretrain"] == "ok":
                sets = ["--set", f"seeds={seeds}"] if notebooks_declare("seeds") else []
                cmd = [sys.executable, "-m", "helpers.report", "--profile", profile, *sets, "--out", str(report_dir)]
                left = deadline - time.monotonic() - ASSEMBLY_RESERVE_S
                status["phases"]["report"] = run_phase("report", cmd, env, left, log)
            else:  # the notebooks would train the missing runs one notebook at a time, far past the budget
                status["phases"]["report"] = "skipped: not every run is trained; call `run` again to resume them"
        except (TripError, subprocess.CalledProcessError, OSError) as e:
            status["error"] = f"{type(e).__name__}: {e}"
            print(f"error: {e}", file=log, flush=True)
        finally:
            for p in assemble(out, report_dir, runs_root(), status):
                print(f"{p} ({p.stat().st_size / 2**20:.2f} MiB)")
    return 0 if status["phases"].get("report") == "ok" else 1


def pretrain(profile: str, seeds: int, tune: bool) -> int:
    """Train every run of the study at once (train_many); return the exit code."""
    from .sweep import SweepError, train_many
    configs = study_configs(profile, seeds, tune)
    print(f"{len(configs)} runs; at the eager step's measured speed they need about "
          f"{estimate_seconds(configs) / 60:.0f} GPU minutes (issue 10: {EAGER_IMAGES_PER_S:,} images/s alone, "
          f"{CONCURRENCY_GAIN}x with runs at once)", flush=True)
    try:
        train_many(configs)
    except SweepError as e:
        print(e, flush=True)
        return 1
    return 0


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.gpu_trip", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("pack", "run", "pretrain"):
        p = sub.add_parser(name)
        p.add_argument("--seeds", type=int, default=3, help="runs per experiment (default 3)")
        p.add_argument("--tune", action="store_true", help="also train the fast recipe's variants on validation")
        p.add_argument("--profile", default="full", help="profile of every run (default full)")
        if name == "pack":
            p.add_argument("--dry-run", action="store_true", help="list what would be fetched and carried; fetch nothing")
            p.add_argument("--dest", default=str(ROOT / DEVICE_DIR))
        if name == "run":
            p.add_argument("--src", default=str(ROOT / DEVICE_DIR))
            p.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / OUT_DIR))
            p.add_argument("--budget-s", type=float, default=BUDGET_S, help="stop training and assemble by then")
            p.add_argument("--site", default=SITE)
    args = ap.parse_args(argv)
    if args.seeds < 1:
        print(f"error: parameter 'seeds' = {args.seeds} is invalid; valid: a positive integer", file=sys.stderr)
        return 2
    try:
        if args.cmd == "pack":
            pack(Path(args.dest), args.seeds, args.dry_run, args.tune)
            return 0
        if args.cmd == "run":
            return run_trip(Path(args.src), Path(args.out), args.seeds, args.budget_s, args.tune, args.profile,
                            site=args.site)
        return pretrain(args.profile, args.seeds, args.tune)
    except (TripError, subprocess.CalledProcessError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def bootstrap(argv) -> int:
    """As a plain script (no IPython yet): install the wheels, then go on as `python -m helpers.gpu_trip`."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--src", default=str(ROOT / DEVICE_DIR))
    ap.add_argument("--site", default=SITE)
    known, _ = ap.parse_known_args(argv)
    if argv[:1] == ["run"]:
        install_wheels(Path(known.src), known.site)
    env = trip_env(known.site)
    os.chdir(ROOT)
    os.execve(sys.executable, [sys.executable, "-m", "helpers.gpu_trip", *argv], env)


if __name__ == "__main__":
    if not __package__:  # run as a file: its folder (helpers/) must not shadow modules, and IPython may be absent
        here = Path(__file__).resolve().parent
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        sys.exit(bootstrap(sys.argv[1:]))
    sys.exit(main())
