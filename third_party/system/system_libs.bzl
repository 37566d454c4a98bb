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
    return [t for t in text.strip().split(" ") if t]

def _pkg_config(ctx, args):
    pkg_config = ctx.which("pkg-config")
    if pkg_config == None:
        fail("pkg-config not found; " + _SETUP_HINT)
    result = ctx.execute([pkg_config] + args + ctx.attr.modules)
    if result.return_code != 0:
        fail("pkg-config %s failed for %s: %s; %s" % (
            " ".join(args),
            ", ".join(ctx.attr.modules),
            result.stderr.strip(),
            _SETUP_HINT,
        ))
    return _split(result.stdout)

def _pkg_config_library_impl(ctx):
    defines = []
    includes = []
    tokens = _pkg_config(ctx, ["--cflags"])
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

    linkopts = _pkg_config(ctx, ["--libs"])
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", """# Generated from pkg-config: {modules}
cc_library(
    name = "{name}",
    hdrs = glob([{hdr_globs}]),
    includes = {includes},
    defines = {defines},
    linkopts = {linkopts},
    visibility = ["//visibility:public"],
)
""".format(
        modules = " ".join(ctx.attr.modules),
        name = ctx.name,
        hdr_globs = ", ".join(['"%s/**"' % d for d in include_dirs]),
        includes = repr(include_dirs),
        defines = repr(defines),
        linkopts = repr(linkopts),
    ))

pkg_config_library = repository_rule(
    implementation = _pkg_config_library_impl,
    attrs = {
        "modules": attr.string_list(mandatory = True, doc = "pkg-config module names"),
    },
    environ = ["PKG_CONFIG_PATH"],
    local = True,
    doc = "A cc_library named like the repository, with flags from pkg-config.",
)
