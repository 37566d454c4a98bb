"""cc_grpc_library: C++ messages and gRPC stubs from .proto files, using the
protoc and grpc_cpp_plugin installed by deploy/setup.sh (no downloaded rules)."""

def cc_grpc_library(name, srcs, deps = [], visibility = None):
    """Generates <file>.pb.{h,cc} and <file>.grpc.pb.{h,cc} for each of srcs.

    srcs are paths relative to this package; imports are resolved relative to it
    too, so `import "tlm/v1/program.proto"` works for proto/tlm/v1/program.proto.
    """
    outs = []
    hdrs = []
    for src in srcs:
        base = src[:-len(".proto")]
        hdrs += [base + ".pb.h", base + ".grpc.pb.h"]
        outs += [base + ".pb.h", base + ".pb.cc", base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    pkg = native.package_name()
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=" + pkg,
            "--cpp_out=$(GENDIR)/" + pkg,
            "--grpc_out=$(GENDIR)/" + pkg,
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
        ] + ["$(location %s)" % s for s in srcs]),
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = hdrs,
        includes = ["."],
        deps = deps + ["@grpc", "@protobuf"],
        visibility = visibility,
    )
