#!/usr/bin/env bash
# Walks through onboarding two kindergartens (one public, one private) with the real client tool
# against a real server, exactly as README.md describes: init, district accounts, application →
# review (one returned and resubmitted) → admission with institution code → commitment letter →
# accounts → shard. Every person keeps their own session (PEMIS_CONFIG_DIR per person).
#
# Usage: tools/demo-onboarding.sh [BIN_DIR]   (default: the debug build)
# Leaves its work in a temporary directory, printed at the end; exits non-zero on any failure.
set -euo pipefail
# The server here is plaintext on loopback; pemis speaks TLS unless told (docs/CONFIGURATION.md, "TLS").
export PEMIS_PLAINTEXT=1
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/.build/debug}"
work="$(mktemp -d)"
export PEMIS_PASSWORD_HASH_COST=12   # quick hashes for a demo; production keeps the default (15)
export PEMIS_CALENDAR_DIR="$root/Config/calendar"
cd "$work"

step() { printf '\n== %s\n' "$*"; }
as() { local who=$1; shift; PEMIS_CONFIG_DIR="$work/people/$who" "$bin/pemis" "$@"; }
# First login of a person: the one-time password, then their own password twice.
first_login() {
  local who=$1 otp=$2
  printf '%s\n%s\n%s\n' "$otp" "Pemis-${who}-2026" "Pemis-${who}-2026" | as "$who" login --user "$who"
}
otp_of() { grep -o 'one-time password[^:]*: *[A-Za-z0-9]*' | awk '{print $NF}'; }

step "pemis-server init: the data directory and the first district administrator"
"$bin/pemis-server" init --data-dir ./data | tee init.out
admin_otp=$(grep 'one-time password' init.out | awk '{print $NF}')

step "start the server"
# JSON log lines at debug level and the metrics listener: the end of the walkthrough checks both
# for personal data (docs/OPERATIONS.md, "Logs").
"$bin/pemis-server" serve --data-dir ./data --port 0 --log-format json --log-level debug --metrics-port 0 >server.out 2>server.log &
server=$!
trap '[ "${server:-0}" = 0 ] || { kill $server 2>/dev/null; wait $server 2>/dev/null || true; }' EXIT
for _ in $(seq 100); do grep -q "listening on" server.out && break; sleep 0.1; done
export PEMIS_SERVER="$(grep -o 'listening on [^ ]*' server.out | head -1 | cut -d' ' -f3)"
for _ in $(seq 100); do grep -q "(metrics" server.out && break; sleep 0.1; done
metrics="$(grep -o 'listening on [^ ]* (metrics' server.out | cut -d' ' -f3)"
echo "server at $PEMIS_SERVER"

step "the district administrator logs in and creates the offices' accounts"
first_login admin "$admin_otp"
for who in preschool vocational planning; do
  role="${who}_office"
  otp=$(as admin account create "$who" --role "$role" --name "$who office clerk" | otp_of)
  first_login "$who" "$otp"
done

step "the Preschool Education Office enters a public kindergarten's application"
as preschool onboarding submit --name "滨海新区第一幼儿园" --ownership public --licence "教民112011号" \
  --address "天津市滨海新区中心大道1号" --sponsor "滨海新区教育体育局" --approved 2024-03-01 --opened 2024-09-01 \
  --children 180 --staff 32 --property owned | tee public.out
public_id=$(head -1 public.out | awk '{print $1}')

step "the Vocational & Adult Education Office enters a private kindergarten's application"
as vocational onboarding submit --name "海星幼儿园" --ownership private --licence "教民112099号" \
  --address "天津市滨海新区海滨路8号" --sponsor "海星教育有限公司" --approved 2024-05-10 --opened 2024-09-01 \
  --children 90 --staff 15 --property rented | tee private.out
private_id=$(head -1 private.out | awk '{print $1}')

step "scope: the Preschool Education Office may not review a private kindergarten"
if as preschool onboarding review "$private_id" --approve; then echo "UNEXPECTED: allowed"; exit 1; fi

step "review: the public one is approved; the private one is returned, corrected and approved"
as preschool onboarding review "$public_id" --approve
as vocational onboarding review "$private_id" --return "the licence number on the form does not match the licence"
as vocational onboarding resubmit "$private_id" --name "海星幼儿园" --ownership private --licence "教民112098号" \
  --address "天津市滨海新区海滨路8号" --sponsor "海星教育有限公司" --approved 2024-05-10 --opened 2024-09-01 \
  --children 90 --staff 15 --property rented
as vocational onboarding review "$private_id" --approve

step "the Development Planning Office admits both and assigns institution codes"
as planning onboarding admit "$public_id" --code 1112000101
as planning onboarding admit "$private_id" --code 1112000102

step "commitment letters recorded"
as preschool onboarding commit "$public_id" --signatory "王丽" --signed 2024-09-02
as vocational onboarding commit "$private_id" --signatory "李强" --signed 2024-09-03

step "the district administrator issues each kindergarten's two accounts; the shards are created"
as admin onboarding issue-accounts "$public_id" --principal wang.li --principal-name "王丽" \
  --administrator zhao.min --administrator-name "赵敏" | tee public-accounts.out
as admin onboarding issue-accounts "$private_id" --principal li.qiang --principal-name "李强" \
  --administrator sun.yue --administrator-name "孙悦" | tee private-accounts.out
ls -l data/shards

step "the public kindergarten's principal logs in and sees its kindergarten"
principal_otp=$(grep '^wang.li' public-accounts.out | awk '{print $NF}')
first_login wang.li "$principal_otp"
first_login zhao.min "$(grep '^zhao.min' public-accounts.out | awk '{print $NF}')"
as wang.li kindergarten show
step "a kindergarten account cannot reach another kindergarten"
if as wang.li kindergarten show 1112000102; then echo "UNEXPECTED: allowed"; exit 1; fi

step "deadlines: the new kindergarten owes its four areas within 30 working days (Art. 13)"
as wang.li deadline list --status open

step "the kindergarten enters its data: basic information, a class, a teacher (ID shown masked)"
as wang.li data profile set --name "滨海新区第一幼儿园" --address "天津市滨海新区中心大道1号" --level level1 \
  --licence "教民112011号" --sponsor "滨海新区教育体育局" --principal "王丽" --phone 022-66886688 \
  --building-area 3200 --outdoor-area 2400 --capacity 270
as wang.li data staff create --name "刘芳" --id-number 120103198806018241 --gender female --born 1988-06-01 \
  --post teacher --qualification "学前教育本科" --hired 2012-09-01
as wang.li data class create --name "小一班" --grade small --year 2026-2027 --capacity 25 --head-teacher S0001
as wang.li data class create --name "大一班" --grade large --year 2026-2027 --capacity 40
as wang.li data profile set --name "滨海新区第一幼儿园" --address "天津市滨海新区中心大道1号" --level model \
  --licence "教民112011号" --sponsor "滨海新区教育体育局" --principal "王丽" --phone 022-66886699 \
  --building-area 3200 --outdoor-area 2400 --capacity 270
as wang.li data history profile
as wang.li data finance set --year 2026 --income tuition=1800000 --income government_funding=2500000 \
  --expenditure salaries=3000000 --expenditure food=600000 --subsidy "生均公用经费=200000"
as wang.li data leadership set --member 王丽:leader --member 赵敏:administrator --member 刘芳:class_leader:S0001 \
  --changed "$(date -u +%Y-%m-%d)"
for area in basic classes staff finance; do as wang.li deadline complete "$area"; done

step "children: classes first; a child is enrolled into one (G record number, ID masked in lists)"
as zhao.min child enroll --name "张小明" --gender male --born 2022-03-15 --id-number 120116202203151239 \
  --birth-place 120116 --household 120116 --guardian 张伟:father:13800138000 --entered 2026-09-01 --class-id C0001
as zhao.min child list
step "…and a class that holds children cannot be deleted"
if as wang.li data class delete C0001; then echo "UNEXPECTED: deleted"; exit 1; fi
step "import: the template with a mistake is refused as a whole, every failing row and field named"
sed 's/120101202201081252/120101202201081255/; s/,C0001$/,C0009/' "$root/docs/examples/children-template.csv" > bad.csv
if as zhao.min child import bad.csv; then echo "UNEXPECTED: imported"; exit 1; fi
as zhao.min child list
step "import: the same template saved as GB18030 (as spreadsheets on Chinese Windows do), then again: no duplicates"
iconv -f UTF-8 -t GB18030 "$root/docs/examples/children-template.csv" > children-gb18030.csv
as zhao.min child import children-gb18030.csv
as zhao.min child import "$root/docs/examples/children-template.csv"
as zhao.min child list

step "other information changes at once, with history; key information goes to the principal"
as zhao.min child update G120116202203151239 --guardian 张伟:father:13800138000 --guardian 李娜:mother:13900001111
as zhao.min child request-change G120116202203151239 --name "张晓明" \
  --evidence "户口簿变更页；家长书面申请 2026-11-20" --signed 2026-11-20
if as zhao.min child decide 1 --approve; then echo "UNEXPECTED: the administrator approved"; exit 1; fi
as wang.li child decide 1 --approve
# Four eyes: the principal may ask for a change, but not approve their own request; they withdraw it.
as wang.li child request-change G120116202203151239 --name "张小明" --evidence "家长书面申请" --signed 2026-11-20
if as wang.li child decide 2 --approve; then echo "UNEXPECTED: the principal approved their own request"; exit 1; fi
as wang.li child decide 2 --reject "asked by mistake"
as wang.li child changes
as wang.li data history "child:G120116202203151239"

step "the paper archive: signed by a parent, checked against the household register"
as zhao.min child archive record G120116202203151239 --signed 2026-09-01 --checked-by 赵敏 --checked-on 2026-09-02
as zhao.min child archive list --filter missing

step "promotion: a preview first, then the whole class moves up"
as zhao.min child promote --class-id C0001 --preview
as zhao.min child promote --class-id C0001
step "…and the large class graduates (its children leave it; their paper may be shredded a year later)"
as zhao.min child enroll --name "周子轩" --gender male --born 2020-10-09 --id-number 120116202010091233 \
  --birth-place 120116 --household 120116 --guardian 周强:father:13500135000 --entered 2023-09-01 --class-id C0002
as zhao.min child graduate --class-id C0002 --preview
as zhao.min child graduate --class-id C0002
as zhao.min child archive list

step "the principal's monthly audit (Art. 11): this month's changes; a month is signed off once it has ended"
as wang.li child month "$(date -u +%Y-%m)" | tail -4
if as wang.li child month "$(date -u +%Y-%m)" --sign-off; then echo "UNEXPECTED: signed off a running month"; exit 1; fi

step "a transfer (Art. 16): the private kindergarten makes a class; the public one transfers a child out to it"
first_login li.qiang "$(grep '^li.qiang' private-accounts.out | awk '{print $NF}')"
first_login sun.yue "$(grep '^sun.yue' private-accounts.out | awk '{print $NF}')"
as li.qiang data class create --name "中一班" --grade middle --year 2026-2027 --capacity 28
as zhao.min transfer out G120116202205201228 --to 1112000102 --applied "$(date -u +%Y-%m-%d)" --id T-demo-0001
step "…the receiver finds it by ID number, reads the archive, and takes the child in"
as sun.yue transfer archive --id-number 120116202205201228 | head -8
as sun.yue transfer in T-demo-0001 --class-id C0001
as sun.yue child list
as zhao.min transfer list
step "the duplicate check: a child active at one kindergarten cannot be enrolled at another"
if as sun.yue child enroll --name "陈浩宇" --gender male --born 2022-01-08 --id-number 120101202201081252 \
  --birth-place 120101 --household 120116 --guardian 陈刚:father:13700137000 --entered 2026-09-01; then
  echo "UNEXPECTED: enrolled twice"; exit 1
fi
as preschool duplicates sweep
as preschool duplicates list

step "district oversight: counts within each office's scope"
as preschool district summary --by-kindergarten
as vocational district summary

step "the district: the Planning & Finance Office confirms the finance; the Preschool Office reads the group"
as admin account create finance --role finance_office --name "计划财务室 周老师" | otp_of > finance.otp
first_login finance "$(cat finance.otp)"
as finance data finance confirm --kindergarten 1112000101 --year 2026
as preschool data leadership show --kindergarten 1112000101
step "the Preschool Education Office starts a term; every kindergarten re-verifies within 3 working days"
as preschool deadline start-term 2026-autumn --on 2026-09-01
as preschool deadline list --kindergarten 1112000102 --status open

step "district supervision: what is overdue, kindergartens, applications and the audit log"
as preschool deadline overdue
as admin kindergarten list
as vocational kindergarten list
as admin onboarding show "$private_id"
as admin audit query --kindergarten 1112000102

step "pemis-server audit verify; pemis-server check (every record active in one shard, the index agrees)"
"$bin/pemis-server" audit verify --data-dir ./data
"$bin/pemis-server" check --data-dir ./data

step "operations: the server's log (JSON lines) and its metrics carry no ID number, phone number or name"
curl -sf "http://$metrics/metrics" > metrics.txt
grep -E '^pemis_rpc_calls_total\{.*method="TransferIn"' metrics.txt
python3 - server.log metrics.txt <<'PY'
import json, re, sys
log, metrics = (open(path, encoding="utf-8").read() for path in sys.argv[1:3])
lines = [line for line in log.splitlines() if line.strip()]
for line in lines:
    entry = json.loads(line)  # every line is one JSON object
    assert {"time", "level", "label", "message"} <= entry.keys(), line
patterns = {
    "an ID number": r"\d{17}[\dX]",          # also every record number (G + the ID number)
    "a mobile number": r"(?<!\d)1[3-9]\d{9}(?!\d)",
    "a child's or guardian's name": r"张小明|张晓明|周子轩|陈浩宇|张伟|李娜|周强",
}
for name, pattern in patterns.items():
    for source, text in (("server.log", log), ("metrics", metrics)):
        found = re.search(pattern, text)
        assert found is None, f"{name} in {source}: ...{text[max(0, found.start() - 80):found.end() + 40]}..."
print(f"server.log: {len(lines)} JSON lines; metrics: {len(metrics.splitlines())} lines; no ID number, phone number or name in either")
PY

echo
echo "demo complete: $work"
