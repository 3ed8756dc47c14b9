#!/usr/bin/env bash
# What the PACS tests (Testing/test_pacs_orthanc.py) need besides Python packages: Debian's Orthanc
# and its DICOMweb plugin. Installed through apt when run as root (CI is); the service apt would start
# stays off (the tests start their own Orthanc on a loopback port). Otherwise it says what is missing
# and the PACS tests are reported as SKIPPED with that reason. Never fails the build.
set -u
need=()
[ -x /usr/sbin/Orthanc ] || need+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "install_orthanc: apt-get install ${need[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
        || echo "install_orthanc: could not install ${need[*]}; the PACS tests will be skipped"
else
    echo "install_orthanc: missing ${need[*]} (not root, or no apt-get); the PACS tests will be skipped." \
         "Install them with: sudo apt-get install -y ${need[*]}"
fi
exit 0
