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
