"""The README's Python example runs as shown (its lines that do not depend
on the CPU print exactly what the README says)."""
import os
import re
import subprocess
import sys

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def test_readme_example(tmp_path):
    with open(README) as f:
        text = f.read()
    section = text[text.index("## Python\n"):]
    code, shown = re.findall(r"```(?:python)?\n(.*?)```", section, re.S)[:2]
    (tmp_path / "example.py").write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got, want = r.stdout.splitlines(), shown.splitlines()
    assert len(got) == len(want)
    assert got[1] == want[1] and got[3] == want[3]
    # the bf16 line's last digits, and the others' ISA and threads, follow the CPU
    assert abs(float(got[2].split()[-1]) - float(want[2].split()[-1])) < 1e-4
    assert got[0].split()[:2] == want[0].split()[:2] and got[4].startswith("isa=")
