//! Compiles cgmgr's default seccomp filters into BPF once, at build time
//! (`src/exec/seccomp_rules.rs`): libseccomp needs milliseconds to build an
//! allow-list of 400 calls, which every `cgmgr exec` would otherwise pay.
//! The programs are for the architecture cgmgr is built on.

#[path = "src/exec/seccomp_rules.rs"]
#[allow(dead_code)]
mod seccomp_rules;

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=src/exec/seccomp_rules.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let programs = [
        ("seccomp-default.bpf", seccomp_rules::default_filter(false)),
        (
            "seccomp-default-nested.bpf",
            seccomp_rules::default_filter(true),
        ),
        ("seccomp-arguments.bpf", seccomp_rules::argument_filter()),
    ];
    for (name, ctx) in programs {
        let ctx = ctx.unwrap_or_else(|e| panic!("{name}: {e}"));
        let file = std::fs::File::create(out.join(name)).expect("creating the BPF file");
        ctx.export_bpf(&file)
            .unwrap_or_else(|e| panic!("exporting {name}: {e}"));
    }
}
