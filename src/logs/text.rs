//! Random log text for the simulated writers: a sentence, a paragraph, a
//! single word, or `[<RFC 3339 time>] <sentence>`, chosen uniformly (as the
//! proof of concept did with its lorem-ipsum generator).

use rand::seq::SliceRandom;
use rand::Rng;

const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
    "request",
    "served",
    "cache",
    "miss",
    "worker",
    "started",
    "connection",
    "accepted",
    "timeout",
    "retrying",
    "upstream",
    "healthy",
    "queue",
    "drained",
    "flushed",
    "checkpoint",
    "replica",
    "synced",
];

/// One random line (without its newline).
pub fn random_line<R: Rng>(rng: &mut R) -> String {
    match rng.gen_range(0..4) {
        0 => sentence(rng),
        1 => paragraph(rng),
        2 => word(rng).to_string(),
        _ => format!("[{}] {}", crate::clock::now_rfc3339(), sentence(rng)),
    }
}

fn word<R: Rng>(rng: &mut R) -> &'static str {
    WORDS.choose(rng).copied().unwrap_or("lorem")
}

fn sentence<R: Rng>(rng: &mut R) -> String {
    let n = rng.gen_range(4..=12);
    let mut s = String::with_capacity(n * 8);
    for i in 0..n {
        let w = word(rng);
        if i == 0 {
            let mut chars = w.chars();
            if let Some(first) = chars.next() {
                s.extend(first.to_uppercase());
                s.push_str(chars.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s.push('.');
    s
}

fn paragraph<R: Rng>(rng: &mut R) -> String {
    let n = rng.gen_range(3..=6);
    (0..n).map(|_| sentence(rng)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_single_lines_of_every_kind() {
        let mut rng = rand::thread_rng();
        let (mut words, mut stamped, mut long) = (0, 0, 0);
        for _ in 0..400 {
            let line = random_line(&mut rng);
            assert!(!line.is_empty() && !line.contains('\n') && !line.contains('\r'));
            words += usize::from(!line.contains(' '));
            stamped += usize::from(line.starts_with('['));
            long += usize::from(line.matches(". ").count() >= 2);
        }
        assert!(
            words > 50 && stamped > 50 && long > 50,
            "{words} {stamped} {long}"
        );
    }
}
