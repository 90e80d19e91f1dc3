"""The wheels that travel with the GPU check: fetch them, check them, and build the CPU stand-in
of the GPU machine's Python.

    python -m benchmarks.device_wheels              # into .whl/: cp312 manylinux x86_64 wheels
    python -m benchmarks.device_wheels --check      # the pins against pyproject.toml only (offline)
    python -m benchmarks.device_wheels --host --dest DIR   # the same pins for this interpreter

The GPU machine (benchmarks/device-image.txt lists its image's distributions) reaches no package
registry, so what depthbench needs beyond its image travels as wheels, pinned in
benchmarks/device-wheels.txt. `fetch` downloads each pin (`pip download --no-deps
--only-binary=:all:` for the machine's tags, the device README's recipe), builds a wheel from the
sdist where PyPI has none (it must come out pure Python: a wheel built here for this CPU's tags
would not install there), keeps one file per pin in the folder, and refuses a set over 60 MiB.
`check_pins` holds the pins to pyproject.toml: every dependency is in the image or pinned at a
version its specifier admits (elpv-dataset left out on purpose), and with the wheels at hand,
every requirement of every wheel is met by the image or another pin, and no pin is there for
nothing.

`make_image_env` builds, from the shared venv, a venv that holds only the image's distributions
(symbolic links to their files), so a CPU run of `gpu.sh --dry-run` imports nothing the GPU
machine lacks; tests/test_gpu_check.py uses it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import zipfile
from email.parser import HeaderParser
from importlib.metadata import distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PINS = HERE / "device-wheels.txt"
IMAGE = HERE / "device-image.txt"
DEFAULT_DEST = ROOT / ".whl"
LIMIT_MIB = 60
# depthbench's dependencies that stay behind on purpose, and why
LEFT_OUT = {"elpv-dataset": "~90 MB of images; the GPU check trains on a generated folder"}
# The GPU machine's interpreter and platform (the device README's `pip download` tags)
DEVICE_TAGS = ["--python-version", "3.12", "--implementation", "cp",
               *[a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
                 for a in ("--platform", p)]]
DEVICE_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3",
                  "sys_platform": "linux", "platform_system": "Linux",
                  "platform_machine": "x86_64", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}


class FetchError(RuntimeError):
    """A pin that could not be downloaded or built (no registry, or no such release)."""


def _lines(path: Path) -> list[str]:
    return [s for line in path.read_text(encoding="utf-8").splitlines()
            if (s := line.split("#", 1)[0].strip())]


def read_pins(path: Path = PINS) -> dict[str, str]:
    """{canonical name: version} of the pin file; anything but `name==version` is an error."""
    pins: dict[str, str] = {}
    for line in _lines(path):
        m = re.fullmatch(r"([A-Za-z0-9._-]+)\s*==\s*([A-Za-z0-9.+!-]+)", line)
        if not m:
            raise ValueError(f"{path}: {line!r} is not a pin; write name==version")
        name = canonicalize_name(m.group(1))
        if name in pins:
            raise ValueError(f"{path}: {name} is pinned twice; keep one version (two stop pip)")
        pins[name] = m.group(2)
    return pins


def read_image(path: Path = IMAGE) -> set[str]:
    return {canonicalize_name(n) for n in _lines(path)}


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    with open(pyproject, "rb") as f:
        return [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The Requires-Dist of `wheel` that apply on the GPU machine (no extras)."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(z.read(meta).decode("utf-8"))
    reqs = [Requirement(r) for r in headers.get_all("Requires-Dist") or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(DEVICE_MARKERS)]


def wheels_in(folder: Path) -> dict[str, Path]:
    """{canonical name: wheel file} in `folder`."""
    return {canonicalize_name(parse_wheel_filename(w.name)[0]): w
            for w in sorted(Path(folder).glob("*.whl"))}


def check_pins(pins: dict[str, str] | None = None, image: set[str] | None = None,
               wheels: Path | None = None) -> list[str]:
    """Problems with the pins, one line each (an empty list: none)."""
    pins = read_pins() if pins is None else pins
    image = read_image() if image is None else image
    problems, needed = [], set()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        if name in LEFT_OUT:
            continue
        if name in pins:
            needed.add(name)
            if not req.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{name}=={pins[name]}: pyproject.toml admits {req}")
        elif name not in image:
            problems.append(f"{name}: a dependency of depthbench ({req}) that the GPU image lacks; "
                            f"pin it in {PINS.name}")
    if wheels is not None:
        found = wheels_in(wheels)
        for name in sorted(set(pins) - set(found)):
            problems.append(f"{name}=={pins[name]}: no wheel in {wheels}; run the fetch")
        for name, wheel in found.items():
            if pins.get(name) != str(parse_wheel_filename(wheel.name)[1]):
                problems.append(f"{wheel.name}: not pinned in {PINS.name}; remove it")
                continue
            for req in wheel_requirements(wheel):
                dep = canonicalize_name(req.name)
                if dep in pins:
                    needed.add(dep)
                    if not req.specifier.contains(pins[dep], prereleases=True):
                        problems.append(f"{name} needs {req}; pinned {dep}=={pins[dep]}")
                elif dep not in image:
                    problems.append(f"{name} needs {req}, in neither the image nor {PINS.name}")
        for name in sorted(set(pins) - needed):
            problems.append(f"{name}: pinned, yet neither depthbench nor another pin needs it")
    return problems


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def _fetch_one(name: str, version: str, dest: Path, tags: list[str]) -> Path:
    """The wheel of `name==version` in `dest`: downloaded, or built from its sdist."""
    got = _pip("download", "-q", "--no-deps", "--only-binary=:all:", *tags, "-d", str(dest),
               f"{name}=={version}")
    if got.returncode == 0:
        return wheels_in(dest)[name]
    with tempfile.TemporaryDirectory(prefix="depthbench-sdist-") as tmp:
        sd = _pip("download", "-q", "--no-deps", "--no-binary=:all:", "-d", tmp, f"{name}=={version}")
        sdists = list(Path(tmp).iterdir())
        if sd.returncode != 0 or not sdists:
            last = (got.stderr.strip().splitlines() or ["?"])[-1]
            raise FetchError(f"{name}=={version}: no wheel and no sdist could be fetched ({last})")
        built = _pip("wheel", "-q", "--no-deps", "-w", tmp, str(sdists[0]))
        wheel = wheels_in(tmp).get(name)
        if built.returncode != 0 or wheel is None:
            raise FetchError(f"{name}=={version}: building its sdist failed: "
                             f"{(built.stderr.strip().splitlines() or ['?'])[-1]}")
        if not wheel.name.endswith("-py3-none-any.whl"):
            raise FetchError(f"{wheel.name}: built for this machine's tags; find a wheel for the "
                             "GPU machine's instead")
        return Path(shutil.copy2(wheel, dest))


def fetch(dest: Path = DEFAULT_DEST, host: bool = False, pins: dict[str, str] | None = None,
          log=print) -> list[Path]:
    """Every pin's wheel in `dest` (kept from an earlier fetch when there), no other file; for the
    GPU machine's tags, or this interpreter's with `host`. Raises FetchError, or ValueError when
    the set is over LIMIT_MIB."""
    pins = read_pins() if pins is None else pins
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    have = wheels_in(dest)
    for name, wheel in have.items():  # one version of each: two would stop the whole install
        if pins.get(name) != str(parse_wheel_filename(wheel.name)[1]):
            wheel.unlink()
    have = wheels_in(dest)
    out = []
    for name, version in pins.items():
        wheel = have.get(name) or _fetch_one(name, version, dest, [] if host else DEVICE_TAGS)
        log(f"  {wheel.name}  {wheel.stat().st_size / 2**20:.2f} MiB")
        out.append(wheel)
    total = sum(w.stat().st_size for w in out) / 2**20
    log(f"  {len(out)} wheels, {total:.2f} MiB in all (limit {LIMIT_MIB} MiB)")
    if total > LIMIT_MIB:
        raise ValueError(f"{dest}: {total:.1f} MiB of wheels, over the {LIMIT_MIB} MiB that may "
                         "travel; drop a pin or choose smaller releases")
    return out


# --- the CPU stand-in of the GPU machine's Python -----------------------------------------------

def _owned_entries(site: Path, allowed: set[str]) -> tuple[set[str], dict[str, set[str]]]:
    """(top-level entries of `site` whose every owner is allowed, {entry shared with a hidden
    distribution: the allowed distributions' paths one level below it})."""
    owners: dict[str, set[tuple[bool, str]]] = {}
    for dist in distributions(path=[str(site)]):
        ok = canonicalize_name(dist.metadata["Name"]) in allowed
        for f in dist.files or []:
            parts = Path(f).parts
            if parts and parts[0] not in ("..", "__pycache__"):
                owners.setdefault(parts[0], set()).add((ok, parts[1] if len(parts) > 2 else ""))
    whole = {e for e, o in owners.items() if all(ok for ok, _ in o)}
    split = {e: {sub for ok, sub in o if ok and sub} for e, o in owners.items()
             if e not in whole and any(ok for ok, _ in o)}
    return whole, split


def image_closure(site: Path, image: set[str], never: set[str]) -> set[str]:
    """The distributions of `site` in `image`, and what they need as installed there (a newer
    huggingface-hub here needs httpx2, the image's older one httpx), never those in `never`."""
    dists = {canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[str(site)])}
    todo = [n for n in dists if n in image and n not in never]
    seen = set(todo)
    while todo:
        for r in dists[todo.pop()].requires or []:
            req = Requirement(r)
            dep = canonicalize_name(req.name)
            if (dep in dists and dep not in seen and dep not in never
                    and (req.marker is None or req.marker.evaluate({"extra": ""}))):
                seen.add(dep)
                todo.append(dep)
    return seen


def make_image_env(env: Path, site: Path | None = None) -> tuple[Path, set[str]]:
    """A venv at `env` whose site-packages links to the distributions of `site` (default: this
    interpreter's) that the GPU machine's image holds (`image_closure`), and to nothing it lacks:
    not the pinned wheels, not elpv-dataset. Returns its python and the distributions it holds."""
    site = Path(site or sysconfig.get_paths()["purelib"])
    image = read_image()
    allowed = image_closure(site, image, (set(read_pins()) - image) | set(LEFT_OUT))
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(env)], check=True)
    python = Path(env) / "bin" / "python"
    target = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                  "get_paths()['purelib'])"], capture_output=True, text=True,
                                 check=True).stdout.strip())
    whole, split = _owned_entries(site, allowed)
    for entry in whole:
        (target / entry).symlink_to(site / entry)
    for entry, subs in split.items():  # a namespace folder shared with a hidden distribution
        (target / entry).mkdir(exist_ok=True)
        for sub in subs:
            (target / entry / sub).symlink_to(site / entry / sub)
    return python, allowed


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.device_wheels",
                                description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: .whl/ at the root")
    p.add_argument("--host", action="store_true",
                   help="wheels for this interpreter instead of the GPU machine's (the CPU test)")
    p.add_argument("--check", action="store_true",
                   help="only check the pins against pyproject.toml (no download)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = get_args_parser().parse_args(argv)
    wheels = None
    if not a.check:
        print(f"fetching {PINS.relative_to(ROOT)} into {a.dest}"
              f" ({'this interpreter' if a.host else 'cp312 manylinux x86_64'}):")
        try:
            fetch(a.dest, host=a.host)
        except (FetchError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        wheels = a.dest
    problems = check_pins(wheels=wheels)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if not problems:
        print(f"pins agree with pyproject.toml{' and with the wheels' if wheels else ''}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
