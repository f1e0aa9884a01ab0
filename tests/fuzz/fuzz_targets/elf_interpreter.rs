//! Fuzzes the ELF reader of `cgmgr rootfs build`: any file must give an
//! interpreter path or an error, never a panic, an overflow or a read out of
//! bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cgmgr::exec::build::elf_interpreter(data);
});
