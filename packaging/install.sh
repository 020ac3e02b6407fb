#!/bin/sh
# Puts this unpacked sybar bundle on PATH and in the desktop's menu (the bundle itself stays where it is).
#   ./install.sh                    for you: ~/.local/bin/sybar, ~/.local/share/applications, icons
#   sudo ./install.sh /usr/local    for everyone
#   ./install.sh --uninstall [PREFIX]
set -eu
app=io.github.sybar.Sybar
here=$(cd "$(dirname "$0")" && pwd -P)
uninstall=0
if [ "${1:-}" = "--uninstall" ]; then uninstall=1; shift; fi
prefix=${1:-$HOME/.local}
share=$prefix/share
sizes="16 32 48 64 128 256"

if [ "$uninstall" = 1 ]; then
    rm -f "$prefix/bin/sybar" "$prefix/bin/sybar-isql" "$share/applications/$app.desktop" \
          "$share/metainfo/$app.metainfo.xml" "$share/icons/hicolor/scalable/apps/$app.svg"
    for s in $sizes; do rm -f "$share/icons/hicolor/${s}x$s/apps/$app.png"; done
    echo "sybar: removed from $prefix (the bundle in $here stays; delete it by hand)"
    exit 0
fi

mkdir -p "$prefix/bin" "$share/applications" "$share/metainfo"
ln -sfn "$here/sybar" "$prefix/bin/sybar"
ln -sfn "$here/sybar-isql" "$prefix/bin/sybar-isql"
# the menu entry runs this bundle by its full path: ~/.local/bin is not always on the desktop's PATH
sed -e "s|^Exec=sybar |Exec=$here/sybar |" -e "s|^TryExec=sybar\$|TryExec=$here/sybar|" \
    "$here/share/applications/$app.desktop" > "$share/applications/$app.desktop"
cp "$here/share/metainfo/$app.metainfo.xml" "$share/metainfo/"
mkdir -p "$share/icons/hicolor/scalable/apps"
cp "$here/share/icons/hicolor/scalable/apps/$app.svg" "$share/icons/hicolor/scalable/apps/"
for s in $sizes; do
    mkdir -p "$share/icons/hicolor/${s}x$s/apps"
    cp "$here/share/icons/hicolor/${s}x$s/apps/$app.png" "$share/icons/hicolor/${s}x$s/apps/"
done
command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
echo "sybar: installed for $prefix: $prefix/bin/sybar and the menu entry 'sybar'"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "sybar: add $prefix/bin to PATH to run sybar from a shell" ;; esac
