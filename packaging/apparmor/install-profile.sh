#!/bin/sh
# Print the AppArmor profile PROFILE for an rlnet installed as BINARY, in
# AppArmor ABI ABI: 4.0 as written, or 3.0 for AppArmor 3 parsers (Debian 12),
# which know no `userns` rule (and whose kernels do not mediate user
# namespaces). ABI empty: 4.0 if /etc/apparmor.d/abi/4.0 exists or no
# AppArmor is installed, else 3.0. Used by `make install`.
set -eu
profile=$1 binary=$2 abi=${3:-}
if [ -z "$abi" ]; then
    if [ -e /etc/apparmor.d/abi/4.0 ] || [ ! -e /etc/apparmor.d/abi/3.0 ]; then
        abi=4.0
    else
        abi=3.0
    fi
fi
case $abi in
    4.0) sed -e "s#^profile rlnet /usr/bin/rlnet #profile rlnet $binary #" "$profile" ;;
    3.0) sed -e "s#^profile rlnet /usr/bin/rlnet #profile rlnet $binary #" \
             -e 's#^abi <abi/4\.0>,#abi <abi/3.0>,#' \
             -e '/^[[:space:]]*userns,[[:space:]]*$/d' "$profile" ;;
    *) echo "install-profile.sh: APPARMOR_ABI must be 4.0 or 3.0, not '$abi'" >&2; exit 1 ;;
esac
