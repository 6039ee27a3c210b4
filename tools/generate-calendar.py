#!/usr/bin/env python3
"""Writes Config/calendar/<year>.json from the PyPI package `chinesecalendar` (the State Council's
announced public holidays and make-up workdays, 调休).

Usage: tools/generate-calendar.py [FIRST_YEAR LAST_YEAR]   (default 2020 2026)

Installs chinesecalendar into a private virtual environment under .build-calendar/ when missing.
A later year is added by writing its file by hand in the same format (see docs/CALENDAR.md) or
by running this script once the package carries it; the server reads the folder at start, no
rebuild needed.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".build-calendar")


def ensure_package():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    try:
        subprocess.check_call([python, "-c", "import chinese_calendar"], stderr=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        subprocess.check_call([python, "-m", "pip", "install", "-q", "chinesecalendar==1.11.0"])
    return python


def main():
    first, last = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) == 3 else (2020, 2026)
    python = ensure_package()
    program = r"""
import json, sys
from chinese_calendar import constants
first, last = int(sys.argv[1]), int(sys.argv[2])
out = {}
for year in range(first, last + 1):
    out[year] = {
        "holidays": sorted((d.isoformat(), (h if isinstance(h, str) else h.value[0])) for d, h in constants.holidays.items() if d.year == year),
        "workdays": sorted((d.isoformat(), (h if isinstance(h, str) else h.value[0])) for d, h in constants.workdays.items() if d.year == year),
    }
print(json.dumps(out))
"""
    data = json.loads(subprocess.check_output([python, "-c", program, str(first), str(last)]))
    folder = os.path.join(ROOT, "Config", "calendar")
    os.makedirs(folder, exist_ok=True)
    for year, days in data.items():
        if not days["holidays"]:
            sys.exit(f"chinesecalendar has no data for {year}: write Config/calendar/{year}.json by hand")
        document = {
            "year": int(year),
            "source": "State Council announcement, via PyPI chinesecalendar 1.11.0",
            "holidays": [{"date": d, "name": n} for d, n in days["holidays"]],
            "workdays": [{"date": d, "name": n} for d, n in days["workdays"]],
        }
        with open(os.path.join(folder, f"{year}.json"), "w", encoding="utf-8") as f:
            json.dump(document, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"Config/calendar/{year}.json: {len(days['holidays'])} holidays, {len(days['workdays'])} make-up workdays")


if __name__ == "__main__":
    main()
