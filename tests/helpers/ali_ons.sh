# The RocketMQ client for the gateway tests: the npm package ali-ons at the
# versions of tests/gateway/package-lock.json, installed once per build in
# $BUILD/gateway-node (npm ci, again when the lock file changed).  Source
# after broker.sh (SRC, BUILD).
#
# ali_ons_setup: sets NODE_DIR and exports NODE_PATH; NODE_SKIP says why the
# client cannot run (no node or npm, npm ci failed), empty when it can.
ali_ons_setup() {
    NODE_SKIP=""
    NODE_DIR="$BUILD/gateway-node"
    export NODE_PATH="$NODE_DIR/node_modules"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        NODE_SKIP="node and npm are needed for the RocketMQ client ali-ons"
        return
    fi
    if ! cmp -s "$SRC/tests/gateway/package-lock.json" "$NODE_DIR/package-lock.json" ||
        [ ! -f "$NODE_DIR/node_modules/ali-ons/package.json" ]; then
        mkdir -p "$NODE_DIR" &&
            cp "$SRC/tests/gateway/package.json" "$SRC/tests/gateway/package-lock.json" "$NODE_DIR/" &&
            (cd "$NODE_DIR" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund) \
                >"$NODE_DIR/npm-ci.log" 2>&1
        if [ $? -ne 0 ] || [ ! -f "$NODE_DIR/node_modules/ali-ons/package.json" ]; then
            NODE_SKIP="npm ci of ali-ons failed (no npm registry?): see $NODE_DIR/npm-ci.log"
        fi
    fi
}
