# shellcheck shell=bash
# tests/vm/flavours/lib/apt.sh - what the flavours share to fetch Debian packages: apt-get and apt-cache on a
# private configuration (own sources.list, lists and archive cache under DIR; the host's sources and its
# package state are untouched) and the host's configured Debian mirror.  Sourced by tests/vm/flavours/*.sh.

rig_apt() { # DIR APT-GET-ARGS...
	local dir=$1
	shift
	apt-get -q -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" \
		-o Dir::State::status=/var/lib/dpkg/status -o APT::Sandbox::User=root \
		-o Debug::NoLocking=1 "$@"
}
rig_apt_cache() { # DIR APT-CACHE-ARGS...
	local dir=$1
	shift
	apt-cache -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" "$@"
}

# The host's Debian mirror (deb822 sources or one-line sources.list).
rig_debian_mirror() {
	local f uri=
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
		[ -n "$uri" ] && break
	done
	if [ -z "$uri" ]; then
		uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			grep -m1 -oE '^deb +(\[[^]]*\] +)?https?://[^ ]+/debian/? ' | grep -oE 'https?://[^ ]+')
	fi
	echo "${uri%/}"
}

# Refresh the private index of DIR (suites SUITES of the host's mirror, main) when it is missing or older than
# a day (VLUD_RIG_APT_UPDATE=1: now).  Returns non-zero if there is no usable index (and could not be made).
# Uses from rig.sh: RIG_LOG log
rig_apt_update() { # DIR LABEL SUITE...
	local dir=$1 label=$2 stamp=$1/updated uri s
	shift 2
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	if [ -f "$stamp" ] && [ -z "$(find "$stamp" -mmin +1440)" ] && [ "${VLUD_RIG_APT_UPDATE:-0}" != 1 ]; then
		return 0
	fi
	uri=$(rig_debian_mirror)
	if [ -z "$uri" ]; then
		log "$label: no Debian mirror found in /etc/apt/sources.list*"
		return 1
	fi
	for s in "$@"; do
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $s main"
	done > "$dir/sources.list"
	log "$label: apt-get update ($uri $*, private configuration under $dir)"
	if rig_apt "$dir" update >> "$RIG_LOG" 2>&1; then
		touch "$stamp"
		return 0
	fi
	log "$label: apt-get update failed (see $RIG_LOG)"
	return 1
}
