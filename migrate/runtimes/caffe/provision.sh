#!/usr/bin/env bash
# Provision a genuine BVLC Caffe side runtime for verification (Debian 12, x86_64, root).
#
# No Python package of Caffe exists and Debian 12 dropped it; Debian 11 (bullseye) built
# caffe 1.0.0+git20180821 (pycaffe for CPython 3.9, CPU only). We download those .debs,
# the shared libraries libcaffe needs and CPython 3.9 with a private apt configuration and
# only unpack them (dpkg -x) into the runtime folder: nothing is installed system-wide.
# A venv of that interpreter gets pycaffe's Python dependencies from PyPI, and a launcher
# named `caffe-python` (which puts the bundled libraries on the loader path) goes on PATH,
# which is where `migrate` looks for it.
#
# Usage: provision.sh [RUNTIME_DIR]
#   RUNTIME_DIR defaults to $MIGRATE_CAFFE_HOME or ~/.cache/torch7-migrate/caffe.
# Running it again is cheap: an existing working runtime is kept. About 30 s, ~100 MB of
# downloads, ~400 MB on disk. Needs apt-get, dpkg, a C compiler (see step 3) and PyPI.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
source "$(dirname "$0")/../debian11.sh"

RUNTIME=${1:-${MIGRATE_CAFFE_HOME:-$HOME/.cache/torch7-migrate/caffe}}
mkdir -p "$RUNTIME"
RUNTIME=$(cd "$RUNTIME" && pwd)
ROOT=$RUNTIME/root            # the unpacked Debian 11 packages
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
VENV=$RUNTIME/venv
LAUNCHER=$RUNTIME/caffe-python
if [ -w /usr/local/bin ]; then BIN_DIR=/usr/local/bin; else BIN_DIR=$HOME/.local/bin; fi
# What "working" means: pycaffe imports and runs a net (a convolution on a 1x1x3x3 blob).
CHECK='import caffe, numpy as np, tempfile, os
d = tempfile.mkdtemp(); p = os.path.join(d, "n.prototxt")
open(p, "w").write("input: \"x\" input_shape { dim: 1 dim: 1 dim: 3 dim: 3 } layer { name: \"c\" '\
'type: \"Convolution\" bottom: \"x\" top: \"y\" convolution_param { num_output: 1 kernel_size: 3 } }")
n = caffe.Net(p, caffe.TEST); n.params["c"][0].data[...] = 1; n.params["c"][1].data[...] = 0.5
n.blobs["x"].data[...] = np.arange(9).reshape(1, 1, 3, 3); n.forward()
assert abs(float(n.blobs["y"].data.ravel()[0]) - 36.5) < 1e-6
print("caffe", caffe.__version__, len(caffe.layer_type_list()), "layer types")'

install_launcher() {
  mkdir -p "$BIN_DIR"
  ln -sf "$LAUNCHER" "$BIN_DIR/caffe-python"
  echo "caffe-python -> $LAUNCHER ($BIN_DIR/caffe-python)"
}

if [ -x "$LAUNCHER" ] && found=$("$LAUNCHER" -c "$CHECK" 2>/dev/null); then
  echo "Caffe runtime already provisioned in $RUNTIME ($found)"
  install_launcher
  exit 0
fi

echo "Provisioning the Caffe side runtime in $RUNTIME ..."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. Debian 11 packages: CPython 3.9, pycaffe, the command-line tools
#    (upgrade_net_proto_*), and the shared libraries libcaffe links: boost, glog/gflags,
#    protobuf 3.12, HDF5, LevelDB, LMDB, reference BLAS, OpenCV 4.5 core/imgproc/imgcodecs
#    and the image codecs imgcodecs links.
CAFFE=(libcaffe1 python3-caffe caffe
       libboost-filesystem1.74.0 libboost-python1.74.0 libboost-thread1.74.0
       libgflags2.2 libgoogle-glog0v5 libunwind8 libprotobuf23
       libhdf5-103-1 libhdf5-hl-100 libsz2 libaec0 libleveldb1d libsnappy1v5 liblmdb0 libblas3
       libopencv-core4.5 libopencv-imgproc4.5 libopencv-imgcodecs4.5 libtbb2
       libjpeg62-turbo libpng16-16 libwebp6 libtiff5 libjbig0 libdeflate0 libzstd1
       libopenjp2-7 libopenexr25 libilmbase25 libexpat1)
bullseye_download "$WORK/debs" "${PYTHON39_DEBS[@]}" "${CAFFE[@]}"

# 2. Unpack; the BLAS symlink is what Debian's alternatives system would have made.
bullseye_unpack "$WORK/debs" "$ROOT"
ln -sf blas/libblas.so.3 "$LIBDIR/libblas.so.3"

# 3. libopencv_imgcodecs links GDAL and GDCM (NITF/DTED rasters and DICOM images, which
#    Caffe never reads; ~55 MB of further packages). It is linked with -z now, so their
#    symbols must resolve when it loads: one small library stands in for the three,
#    built here. GDALAllRegister (called once when imgcodecs lists its decoders) does
#    nothing; any other of its functions reports itself and exits.
command -v cc > /dev/null || { apt-get -qq update && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends gcc libc6-dev > /dev/null; }
MISSING=$(nm -D --undefined-only "$LIBDIR/libopencv_imgcodecs.so.4.5" | awk '{print $NF}' \
          | grep -E '^GDAL|GDAL(Dataset|RasterBand|ColorTable)|4gdcm' || true)
[ -n "$MISSING" ] || { echo "provision: libopencv_imgcodecs needs no GDAL/GDCM symbols?" >&2; exit 1; }
{
  echo '#include <stdio.h>'
  echo '#include <stdlib.h>'
  echo 'static void unavailable(const char *what) {'
  echo '  fprintf(stderr, "caffe runtime: %s needs GDAL/GDCM, which is not bundled\n", what);'
  echo '  exit(127); }'
  n=0
  for sym in $MISSING; do
    n=$((n + 1))
    if [ "$sym" = GDALAllRegister ]; then
      echo 'void GDALAllRegister(void) {}'
    else
      echo "void stand_in_$n(void) __asm__(\"$sym\");"
      echo "void stand_in_$n(void) { unavailable(\"$sym\"); }"
    fi
  done
} > "$WORK/gdal_gdcm_stand_in.c"
cc -shared -fPIC -O1 -o "$LIBDIR/libgdal-gdcm-stand-in.so" "$WORK/gdal_gdcm_stand_in.c"
for soname in libgdal.so.28 libgdcmMSFF.so.3.0 libgdcmDSED.so.3.0; do
  ln -sf libgdal-gdcm-stand-in.so "$LIBDIR/$soname"
done

# 4. The interpreter's modules linked against Debian 11 libraries find them by rpath.
python39_fix_rpaths "$ROOT" "$WORK"
PY39=$ROOT/usr/bin/python3.9

# 5. Every library libcaffe and pycaffe load must be found among the bundled ones (a
#    missing one is named here, not as an ImportError later).
unresolved=$(LD_LIBRARY_PATH=$LIBDIR ldd "$LIBDIR"/libcaffe.so.1* \
               "$ROOT"/usr/lib/python3/dist-packages/caffe/_caffe*.so | grep 'not found' | sort -u || true)
[ -z "$unresolved" ] || { echo "provision: unresolved libraries:" >&2; echo "$unresolved" >&2; exit 1; }

# 6. A venv (Debian strips ensurepip: pip comes from its own wheel) with pycaffe's Python
#    dependencies: numpy 1.x (pycaffe is built against its ABI), protobuf 3.20 (Debian's
#    caffe_pb2.py is protoc 3.12 output), and scipy/scikit-image (caffe/io.py imports them).
#    pycaffe itself (unpacked in dist-packages) is put on the venv's path by a .pth file.
python39_venv "$ROOT" "$VENV" "$WORK"
"$VENV/bin/pip" install -q --only-binary=:all: numpy==1.26.4 protobuf==3.20.3 scipy==1.13.1 \
  scikit-image==0.24.0 six==1.17.0
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$ROOT/usr/lib/python3/dist-packages" > "$SITE/debian-pycaffe.pth"

# 7. The launcher: the bundled libraries on the loader path, Caffe's INFO logs off unless
#    asked for (GLOG_minloglevel=0).
cat > "$LAUNCHER" <<EOF
#!/bin/sh
# python 3.9 with pycaffe (BVLC Caffe from Debian 11), provisioned by torch7-migrate
export LD_LIBRARY_PATH="$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export GLOG_minloglevel="\${GLOG_minloglevel:-2}"
exec "$VENV/bin/python" "\$@"
EOF
chmod +x "$LAUNCHER"
found=$("$LAUNCHER" -c "$CHECK")
echo "Caffe runtime ready: $found"
install_launcher
