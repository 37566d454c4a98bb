"""Repository rules that wrap libraries installed by deploy/setup.sh as cc_library targets.

Flags are read from pkg-config at fetch time, never copied by hand:
  -D...           -> defines (propagate to dependents)
  -I/-isystem dir -> the directory is symlinked into the repository and exported
                     through `includes`, because Bazel rejects absolute include
                     paths outside the execution root
  everything else from --cflags is dropped (warnings, -pthread is in --libs)
  --libs          -> linkopts, in order
"""

_SETUP_HINT = "run deploy/setup.sh to install the build dependencies"

def _split(text):
    return [t for t in text.replace("\n", " ").replace("\t", " ").strip().split(" ") if t]

def _run_tool(ctx, tool, args):
    path = ctx.which(tool)
    if path == None:
        fail("%s not found; %s" % (tool, _SETUP_HINT))
    result = ctx.execute([path] + args)
    if result.return_code != 0:
        fail("%s %s failed: %s; %s" % (tool, " ".join(args), result.stderr.strip(), _SETUP_HINT))
    return _split(result.stdout)

def _write_library(ctx, tokens, linkopts, source):
    """Writes BUILD.bazel with a cc_library from compiler and linker flags."""
    defines = []
    includes = []
    i = 0
    for _ in range(len(tokens)):
        if i >= len(tokens):
            break
        t = tokens[i]
        if t.startswith("-D"):
            defines.append(t[2:])
        elif t in ("-I", "-isystem") and i + 1 < len(tokens):
            includes.append(tokens[i + 1])
            i += 1
        elif t.startswith("-I"):
            includes.append(t[2:])
        elif t.startswith("-isystem"):
            includes.append(t[len("-isystem"):])
        i += 1

    include_dirs = []
    for n, path in enumerate(includes):
        if path in ("/usr/include", "/usr/local/include"):
            continue  # already on the compiler's default search path
        local = "include_%d" % n
        ctx.symlink(path, local)
        include_dirs.append(local)

    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", """# Generated from {source}
cc_library(
    name = "{name}",
    hdrs = glob([{hdr_globs}]),
    includes = {includes},
    defines = {defines},
    linkopts = {linkopts},
    visibility = ["//visibility:public"],
)
""".format(
        source = source,
        name = ctx.name,
        hdr_globs = ", ".join(['"%s/**"' % d for d in include_dirs]),
        includes = repr(include_dirs),
        defines = repr(defines),
        linkopts = repr(linkopts),
    ))

def _pkg_config_library_impl(ctx):
    modules = ctx.attr.modules
    _write_library(
        ctx,
        _run_tool(ctx, "pkg-config", ["--cflags"] + modules),
        _run_tool(ctx, "pkg-config", ["--libs"] + modules),
        "pkg-config: " + " ".join(modules),
    )

pkg_config_library = repository_rule(
    implementation = _pkg_config_library_impl,
    attrs = {
        "modules": attr.string_list(mandatory = True, doc = "pkg-config module names"),
    },
    environ = ["PKG_CONFIG_PATH"],
    local = True,
    doc = "A cc_library named like the repository, with flags from pkg-config.",
)

def _llvm_config_library_impl(ctx):
    tool = ctx.attr.llvm_config
    _write_library(
        ctx,
        _run_tool(ctx, tool, ["--cppflags"]),
        _run_tool(ctx, tool, ["--ldflags", "--libs", "--system-libs"] + ctx.attr.components),
        "%s: %s" % (tool, " ".join(ctx.attr.components)),
    )

llvm_config_library = repository_rule(
    implementation = _llvm_config_library_impl,
    attrs = {
        "llvm_config": attr.string(mandatory = True, doc = "e.g. llvm-config-15"),
        "components": attr.string_list(mandatory = True, doc = "LLVM components to link"),
    },
    local = True,
    doc = "A cc_library named like the repository, with flags from llvm-config.",
)

def _header_dir_library_impl(ctx):
    for probe in ctx.attr.probes:
        if not ctx.path(probe).exists:
            fail("%s not found; %s" % (probe, _SETUP_HINT))
    tokens = []
    for d in ctx.attr.include_dirs:
        tokens += ["-isystem", d]
    _write_library(ctx, tokens, ctx.attr.linkopts, "installed headers: " + " ".join(ctx.attr.include_dirs))

header_dir_library = repository_rule(
    implementation = _header_dir_library_impl,
    attrs = {
        "include_dirs": attr.string_list(mandatory = True, doc = "header directories"),
        "linkopts": attr.string_list(mandatory = True, doc = "linker flags"),
        "probes": attr.string_list(doc = "files that must exist (else: run setup)"),
    },
    local = True,
    doc = "A cc_library for a library installed without pkg-config (libtorch).",
)
