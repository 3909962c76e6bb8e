#!/usr/bin/env bash
# netns-rsh.sh HOST WORD... - Open MPI rsh agent for the netns test cluster
# (mpirun --mca plm_rsh_agent cluster/netns-rsh.sh). Where ssh would start
# the daemon on HOST, this runs it in the network namespace HOST.
#
# mpirun hands an rsh agent the daemon's command as words meant for a remote
# shell (` orted`, `"env"`, `"1234.0;tcp://..."`). No shell and no eval here:
# each word is trimmed and, when wrapped in double quotes, unwrapped; a word
# that would need a shell to mean what it says ($, `, \, quotes inside, or
# unquoted ; & | < > ( ) * ? [ ] ~ ') is refused. HOST must be one of the
# cluster's own namespaces (rt<ID>-h<N>), so nothing else can be entered.
set -euo pipefail
die() { echo "netns-rsh: $*" >&2; exit 255; }
[ $# -ge 2 ] || die "usage: netns-rsh.sh HOST COMMAND..."
host=$1
shift
[[ $host =~ ^rt[0-9]{1,2}-h[0-9]{1,3}$ ]] || die "host '$host' is not a test-cluster namespace (rt<ID>-h<N>)"
ip netns list | awk '{print $1}' | grep -qx -- "$host" || die "no namespace '$host' (run cluster/netns-up.sh)"
args=()
for w in "$@"; do
  w=${w#"${w%%[![:space:]]*}"}
  w=${w%"${w##*[![:space:]]}"}
  [ -n "$w" ] || continue
  if [[ ${#w} -ge 2 && $w == \"*\" ]]; then
    w=${w:1:${#w}-2}
    case $w in *[\"\$\`\\]*) die "refusing a quoted word that needs a shell: \"$w\"" ;; esac
  else
    case $w in *[\"\'\$\`\\\;\&\|\<\>\(\)\*\?\[\]~]*) die "refusing a word that needs a shell: $w" ;; esac
  fi
  args+=("$w")
done
[ ${#args[@]} -ge 1 ] || die "no command"
# Each "host" keeps Open MPI's session directory in its own scratch: the
# namespaces share the host name and /tmp, and daemons of different hosts
# racing to create /tmp/ompi.<hostname>.<uid>/jf.<job> fail with EEXIST.
scratch=/run/ringtrain-netns-${host%-h*}/h${host##*-h}
[ -d "$scratch" ] || die "no scratch directory $scratch (run cluster/netns-up.sh)"
export OMPI_MCA_orte_tmpdir_base="$scratch"
exec ip netns exec "$host" "${args[@]}"
