#!/bin/bash
# test-config.sh - the configuration parser through `vlud --check-config`: the shipped files are valid and
# say the defaults (config/vlud.conf printed == `{}` printed), every key documented in docs/CONFIG.md is
# known to the parser and every key the parser prints is documented, and each bad file in a table is
# refused with exit status 1, a message naming the file and the key, and nothing on stdout.
#   VLU_BUILD=build VLU_TOP=. bash tests/integration/test-config.sh
S=integ-config
. "$(dirname "$0")/lib.sh"
VLUD=$B/vlud

# check_file NAME FILE: valid, printed as JSON on stdout, exit 0
check_file() {
	if "$VLUD" --check-config --config "$2" > "$T/$1.out" 2> "$T/$1.err"; then
		if grep -q '"vmms"' "$T/$1.out"; then ok "$1/valid"; else notok "$1/valid" "no configuration printed"; fi
	else
		notok "$1/valid" "$(cat "$T/$1.err")"
	fi
}

check_file vlud.conf "$TOP/config/vlud.conf"
check_file demo.conf "$TOP/config/demo.conf"
printf '{}\n' > "$T/empty.conf"
check_file empty "$T/empty.conf"
# config/vlud.conf "shows every key with its default value": it must print exactly what {} prints
if cmp -s "$T/vlud.conf.out" "$T/empty.out"; then
	ok "vlud.conf/states-the-defaults"
else
	notok "vlud.conf/states-the-defaults" "differs from the built-in defaults: $(diff "$T/empty.out" "$T/vlud.conf.out" | tr '\n' ' ')"
fi
# C comments are accepted (documented in config/vlud.conf)
printf '/* c */ { // line\n "orphan_expiry_s": 5 /* x */ }\n' > "$T/comments.conf"
check_file comments "$T/comments.conf"
if grep -q '"orphan_expiry_s": 5' "$T/comments.out"; then ok "comments/value-taken"; else notok "comments/value-taken" "orphan_expiry_s not 5"; fi

printf '{"vmms": [{"uids": [0], "gids": ["root"], "devices": ["vdpa0", "/dev/vhost-vdpa-1"], "fd_types": ["memfd", "eventfd"], "max_fds": 64}]}\n' > "$T/rule.conf"
check_file rule "$T/rule.conf"
if grep -q '"max_fds": 64' "$T/rule.out" && grep -q '"/dev/vhost-vdpa-1"' "$T/rule.out"; then ok "rule/values-taken"; else notok "rule/values-taken" "$(tr -d '\n' < "$T/rule.out")"; fi

# docs/CONFIG.md's reference table: every documented key is printed by the parser, and every leaf the
# parser prints is documented
# (the table whose header starts "| key |", and the vmm-rule table whose header starts "| rule key |")
keys=$(awk '/^\| (rule )?key \|/ { t = 1; next } t && !/^\|/ { t = 0 } t' "$TOP/docs/CONFIG.md" |
	grep -o '^| `[a-z_.]*`\(, `[a-z_.]*`\)*' | grep -o '`[a-z_.]*`' | tr -d '`' | sort -u)
missing=
for k in $keys; do
	# (grep on the files, not cat | grep -q: with pipefail, cat killed by SIGPIPE after an early match
	# made the key look missing, depending on timing)
	grep -q "\"${k##*.}\":" "$T/empty.out" "$T/rule.out" || missing="$missing $k"
done
if [ -n "$keys" ] && [ -z "$missing" ]; then ok "docs/every-documented-key-known"; else notok "docs/every-documented-key-known" "unknown to the parser:${missing:- (no keys found in docs/CONFIG.md)}"; fi
undoc=
for leaf in $(cat "$T/empty.out" "$T/rule.out" | grep -o '"[a-z_]*": [^{[]' | sed 's/"\([a-z_]*\)".*/\1/' | sort -u); do
	# (a here-string, not echo | grep -q: with pipefail, echo killed by SIGPIPE after an early match made
	# the key look undocumented, depending on timing)
	grep -q "\(^\|\.\)$leaf\$" <<< "$keys" || undoc="$undoc $leaf"
done
if [ -z "$undoc" ]; then ok "docs/every-key-documented"; else notok "docs/every-key-documented" "not in docs/CONFIG.md:$undoc"; fi

# bad NAME EXPECTED-MESSAGE-PART CONTENT: refused, exit 1, message names it, stdout empty
bad() {
	local name=$1 want=$2 f=$T/$1.conf rc
	printf '%s\n' "$3" > "$f"
	"$VLUD" --check-config --config "$f" > "$T/$name.out" 2> "$T/$name.err"
	rc=$?
	if [ "$rc" -ne 1 ]; then
		notok "bad/$name" "exit status $rc, want 1"
	elif ! grep -qF -- "$want" "$T/$name.err"; then
		notok "bad/$name" "message '$(cat "$T/$name.err")' lacks '$want'"
	elif ! grep -qF -- "$f" "$T/$name.err"; then
		notok "bad/$name" "message does not name the file"
	elif [ -s "$T/$name.out" ]; then
		notok "bad/$name" "printed a configuration anyway"
	else
		ok "bad/$name"
	fi
}

bad not-object 'must be a JSON object' '[1, 2]'
bad truncated 'unexpected end of file' '{"limits": {'
bad trailing-garbage 'trailing data after the configuration object' '{} x'
bad unknown-top 'bogus: unknown key' '{"bogus": 1}'
bad socket-not-object 'socket: must be an object' '{"socket": 1}'
bad socket-relative 'socket.path: must be an absolute path' '{"socket": {"path": "run/x.sock"}}'
bad socket-long 'socket.path: must be an absolute path shorter than 108 bytes' "{\"socket\": {\"path\": \"/$(printf 'a%.0s' $(seq 1 120))\"}}"
bad socket-mode 'socket.mode: must be an octal string' '{"socket": {"mode": "rw-rw----"}}'
bad socket-mode-int 'socket.mode: must be an octal string' '{"socket": {"mode": 432}}'
bad socket-group 'socket.group: unknown group' '{"socket": {"group": "no-such-group-vlud"}}'
bad socket-key 'socket.owner: unknown key' '{"socket": {"owner": "root"}}'
bad limits-type 'limits.max_instances: must be an integer' '{"limits": {"max_instances": "32"}}'
bad limits-range-high 'limits.max_fds_per_message: must be between 1 and 253' '{"limits": {"max_fds_per_message": 254}}'
bad limits-range-low 'limits.max_json_depth: must be between' '{"limits": {"max_json_depth": 1}}'
bad limits-negative 'limits.max_connections: must be between' '{"limits": {"max_connections": -1}}'
bad limits-key 'limits.max_fds: unknown key' '{"limits": {"max_fds": 3}}'
bad timeouts-key 'timeouts.claim_ms: unknown key' '{"timeouts": {"claim_ms": 3}}'
bad timeouts-update-zero 'timeouts.update.claim_ms: must be between' '{"timeouts": {"update": {"claim_ms": 0}}}'
bad timeouts-update-key 'timeouts.update.ready_ms: unknown key' '{"timeouts": {"update": {"ready_ms": 5}}}'
bad update-not-object 'update: must be an object' '{"update": true}'
bad update-bool 'update.kill_failed_successor: must be true or false' '{"update": {"kill_failed_successor": "yes"}}'
bad update-bool-int 'update.allow_disruptive: must be true or false' '{"update": {"allow_disruptive": 1}}'
bad update-state-size 'update.max_state_bytes: must be between 1 and 67108864' '{"update": {"max_state_bytes": 67108865}}'
bad update-key 'update.allow_everything: unknown key' '{"update": {"allow_everything": true}}'
bad orphan-expiry 'orphan_expiry_s: must be between' '{"orphan_expiry_s": 31536001}'
bad operators-type 'operators: must be an object' '{"operators": [0]}'
bad operators-user 'unknown user' '{"operators": {"uids": ["no-such-user-vlud"]}}'
bad operators-key 'operators.users: unknown key' '{"operators": {"users": [0]}}'
bad vmms-type 'vmms: must be an array of rules' '{"vmms": {}}'
bad vmm-rule-key 'unknown key' '{"vmms": [{"uids": [0], "allow": true}]}'
bad vmm-devices 'must be an array of device names or paths' '{"vmms": [{"uids": [0], "devices": "vdpa0"}]}'
bad vmm-fd-type 'fd_types' '{"vmms": [{"uids": [0], "fd_types": ["socket-of-doom"]}]}'
bad vmm-max-fds 'max_fds' '{"vmms": [{"uids": [0], "max_fds": 100000}]}'

# files that cannot be a configuration
"$VLUD" --check-config --config "$T/does-not-exist.conf" > "$T/nx.out" 2> "$T/nx.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'No such file' "$T/nx.err" && [ ! -s "$T/nx.out" ]; then ok "bad/missing-file"; else notok "bad/missing-file" "rc $rc: $(cat "$T/nx.err")"; fi
mkdir "$T/dir.conf"
"$VLUD" --check-config --config "$T/dir.conf" > "$T/dir.out" 2> "$T/dir.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'not a regular file' "$T/dir.err"; then ok "bad/directory"; else notok "bad/directory" "rc $rc: $(cat "$T/dir.err")"; fi
{ printf '{"orphan_expiry_s": 0 /*'; head -c 2000000 /dev/zero | tr '\0' ' '; printf '*/}\n'; } > "$T/big.conf"
"$VLUD" --check-config --config "$T/big.conf" > "$T/big.out" 2> "$T/big.err"
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'larger than' "$T/big.err"; then ok "bad/too-large"; else notok "bad/too-large" "rc $rc: $(cat "$T/big.err")"; fi

exit $((FAILS > 0))
