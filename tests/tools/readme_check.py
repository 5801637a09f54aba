"""tests/tools/readme_check.py README BIN REPO: the README's claims checked against the tools
(run by tests/tools/t0850-readme.sh; TAP lines on stdout).

1. Options: in every `rhd-X ...` command (code blocks and inline code), each --option is in
   `rhd-X [sub] --help`; a prose sentence "`--opt` ... (rhd-a, rhd-b sub, ...)" claims the option
   for each tool listed: checked too; any other --option must exist in some tool's --help or in a
   script the same line names.
2. Command blocks: every line of a ```sh block runs, in order, in one scratch directory (PATH has
   BIN, tests/ is the repository's), and must exit 0, unless its comment carries a marker:
   [long], [gpu], [network], [cluster] (listed as SKIPs). mpirun gets --allow-run-as-root
   --oversubscribe as root.
3. Timings: a number of seconds or minutes stated in prose must sit in a paragraph that says how
   it was measured ("measured", "took", "on N CPU cores", "per step"...)."""
import os, re, shlex, subprocess, sys, tempfile

readme, BIN, REPO = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
text = open(readme).read()
n = fails = 0
def tap(ok, what):
    global n, fails
    n += 1
    fails += not ok
    print(("ok" if ok else "not ok") + f" {n} - {what}")

helps = {}
def help_of(tool, sub=None):
    key = (tool, sub)
    if key not in helps:
        cmd = [os.path.join(BIN, tool)] + ([sub] if sub else []) + ["--help"]
        try:
            helps[key] = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        except OSError:
            helps[key] = ""
    return helps[key]
TOOLS = sorted(f for f in os.listdir(BIN) if f.startswith("rhd-"))
SUBS = {"rhd-schedule": ["fit", "show", "noise"]}
def has_opt(tool, sub, opt):
    return re.search(r"(^|[\s,\[])" + re.escape(opt) + r"(?![\w-])", help_of(tool, sub)) is not None

# --- 1. options
blocks = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
code_lines = [l for lang, b in blocks for l in b.replace("\\\n", " ").splitlines()]
inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
commands = []
for src in code_lines + inline:
    for part in re.split(r"[|;&]+", src.split("#")[0]):
        w = part.split()
        while w and (w[0] in ("mpirun", "srun", "sudo") or w[0].startswith("-") or re.fullmatch(r"\d+|[\w.]+=\S*", w[0])
                     or (len(w) > 1 and w[0] in ("-np", "-n", "-N"))):
            w = w[1:]
        if w and w[0] in ("mpirun", "srun"):
            continue
        if w and os.path.basename(w[0]) in TOOLS:
            commands.append(w)
checked = set()
for w in commands:
    tool = os.path.basename(w[0])
    sub = w[1] if tool in SUBS and len(w) > 1 and w[1] in SUBS[tool] else None
    for o in w[1:]:
        m = re.match(r"(--[a-zA-Z][\w-]*)", o)
        if m and (tool, sub, m.group(1)) not in checked:
            checked.add((tool, sub, m.group(1)))
            tap(has_opt(tool, sub, m.group(1)), f"{tool}{' ' + sub if sub else ''} takes {m.group(1)} (a README command)")
prose = re.sub(r"```.*?```", "", text, flags=re.S)
for para in re.split(r"\n\s*\n", prose):
    para1 = " ".join(para.split())
    claims = [(m.group(1), m.group(2), m.group(0)) for m in
              re.finditer(r"`(--[a-zA-Z][\w-]*)[^`()]*`[^()`]{0,80}?\(([^()]*rhd-[^()]*)\)", para1)]
    claims += [(m.group(1), m.group(2), m.group(0)) for m in
               re.finditer(r"`(--[a-zA-Z][\w-]*)[^`]*` is taken by ([^.(]*)", para1)]
    for opt, lst, src in claims:
        for t in re.findall(r"rhd-[\w-]+(?: (?:fit|show|noise)(?![\w-]))?", lst):
            tool, _, sub = t.partition(" ")
            tap(has_opt(tool, sub or None, opt), f"{t} takes {opt} (as the README says: '{src[:60]}...')")
def external_help(prog):
    if prog not in helps:
        try:
            helps[prog] = subprocess.run([prog, "--help", "all"], capture_output=True, text=True, timeout=30).stdout
        except OSError:
            helps[prog] = ""
    return helps[prog]
seen = set()
for section in re.split(r"\n(?=## )", prose):  # an option of a script or program named in its section
    scripts = [s for s in set(re.findall(r"[\w./-]+\.sh", section)) if os.path.exists(os.path.join(REPO, s))]
    progs = [p for p in ("mpirun", "srun") if p in section]
    for line in section.splitlines():
        for opt in sorted(set(re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", line)) - seen):
            seen.add(opt)
            ok = any(has_opt(t, s, opt) for t in TOOLS for s in [None] + SUBS.get(t, []))
            ok = ok or any(opt in open(os.path.join(REPO, s)).read() for s in scripts)
            ok = ok or any(re.search(re.escape(opt) + r"(?![\w-])", external_help(p)) for p in progs)
            tap(ok, f"{opt} exists (a tool's --help, or a script or program of its section: {', '.join(scripts + progs) or 'none'})")

# --- 2. command blocks
work = tempfile.mkdtemp(prefix="readme.", dir=os.environ.get("T") or None)
os.symlink(os.path.join(REPO, "tests"), os.path.join(work, "tests"))
env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"])
root = os.geteuid() == 0
for lang, b in blocks:
    if lang != "sh":
        continue
    for line in b.replace("\\\n", " ").splitlines():
        cmd = line.split(" #")[0].strip()
        if not cmd or cmd.startswith("#"):
            continue
        marks = re.findall(r"\[(long|gpu|network|cluster)\]", line)
        if marks:
            n += 1
            print(f"ok {n} # SKIP README command marked [{marks[0]}]: {cmd[:70]}")
            continue
        w = shlex.split(cmd)
        if w[0] == "mpirun":
            w[1:1] = ["--oversubscribe"] + (["--allow-run-as-root"] if root else [])
        try:
            r = subprocess.run(w, cwd=work, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as x:
            r = subprocess.CompletedProcess(w, 127, "", str(x))
        tap(r.returncode == 0, f"README command runs (exit {r.returncode}): {cmd[:90]}")
        if r.returncode:
            print("#   " + "\n#   ".join(r.stderr.strip().splitlines()[-3:]))

# --- 3. timings come with how they were measured
for para in re.split(r"\n\s*\n", prose):
    p1 = " ".join(para.split())
    for m in re.finditer(r"\b\d+(\.\d+)? ?(s|min|minutes|seconds)\b", p1):
        ok = re.search(r"measured|took|on \d+ (CPU )?cores|per (step|frame)|load average|budget|limit|at most|timeout|every \d+ ?s|default", p1)
        if not ok:
            tap(False, f"a timing without how it was measured: '...{p1[max(0, m.start() - 60):m.end() + 20]}...'")
            break
tap(True, "README timings: each stated with its measurement context")
print(f"1..{n}")
sys.exit(1 if fails else 0)
