//! Mutation fuzzing of the parser: random byte edits of the shipped example must never panic,
//! and every rejection must name a problem. (Deterministic: a fixed xorshift seed per case.)

use super::*;

use bbwd_testkit::Rng;

const ALPHABET: &[u8] = b" \n\t=[]{}\",.#0123456789abcdefsmh-_\\'\x00\xff";

#[test]
fn mutated_configs_never_panic_and_every_rejection_names_a_problem() {
    let origin = Path::new("fuzz.toml");
    for case in 0..1500u64 {
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15 ^ (case + 1));
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for _ in 0..=rng.index(8) {
            let at = rng.index(bytes.len());
            match rng.index(3) {
                0 => bytes[at] = ALPHABET[rng.index(ALPHABET.len())],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, ALPHABET[rng.index(ALPHABET.len())]),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(p) = parse(&text, origin) {
            assert!(
                !p.problems.is_empty(),
                "case {case}: rejected without a problem"
            );
            for problem in &p.problems {
                assert!(!problem.message.is_empty(), "case {case}: empty message");
            }
        }
    }
}
