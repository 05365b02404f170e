//! The fuzz target (`fuzz/src/session.rs`) on stable: every input of the
//! checked-in corpus (`fuzz/corpus/session/`), then proptest-generated ones
//! (arbitrary bytes, and byte strings shaped like the differential's
//! operation encoding). A crash libFuzzer finds belongs in the corpus, so it
//! is replayed here from then on.

#[path = "../fuzz/src/session.rs"]
mod session;

use proptest::prelude::*;

#[test]
fn the_corpus_passes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/session");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| session::run(&data));
        assert!(r.is_ok(), "corpus input {} fails", path.display());
        n += 1;
    }
    assert!(n >= 20, "the corpus has only {n} inputs");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        session::run(&data);
    }

    #[test]
    fn operation_sequences(ops in prop::collection::vec(prop::collection::vec(any::<u8>(), 6..30), 1..60)) {
        session::differential(&ops.concat());
    }
}
