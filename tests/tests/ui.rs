//! Compile-time behaviour of the macros: what must compile, and the error each mistake gives.
//!
//! The `.stderr` files are pinned to the stable compiler CI uses (rustc 1.95); another compiler
//! may word its part of a message differently. Regenerate them with
//! `TRYBUILD=overwrite cargo test -p tests --test ui`, then read every changed file: each error
//! must point at the culprit and say what to write instead.

#[test]
#[cfg_attr(miri, ignore)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
