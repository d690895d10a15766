//! The nftables changes that turn what the kernel has into what the firewall wants, in the
//! order one transaction must make them. Nothing that is right is touched: a chain is
//! rewritten only when its digest differs, a set changes element by element.

use super::ir::{Chain, Family, Hook, ObservedRuleset, Rule, Ruleset, Set, SetKind, SetValue, MANIFEST};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;

/// One change, as the data plane applies it (all of a plan in one transaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    AddTable(Family),
    AddSet {
        family: Family,
        name: String,
        kind: SetKind,
    },
    AddChain {
        family: Family,
        name: String,
        hook: Option<(Hook, i32)>,
    },
    FlushChain {
        family: Family,
        name: String,
    },
    /// `comment`: the chain's digest, on its last rule.
    AddRule {
        family: Family,
        chain: String,
        rule: Rule,
        comment: Option<String>,
    },
    FlushSet {
        family: Family,
        name: String,
    },
    DeleteElements {
        family: Family,
        set: String,
        keys: Vec<String>,
    },
    AddElements {
        family: Family,
        set: String,
        elements: Vec<(String, Option<SetValue>)>,
    },
    DeleteChain {
        family: Family,
        name: String,
    },
    DeleteSet {
        family: Family,
        name: String,
    },
}

/// The digest a chain's last rule carries: of its hook and rules.
pub fn digest(chain: &Chain) -> String {
    let text = format!("{:?}", (chain.hook, &chain.rules));
    let hash = Sha1::digest(text.as_bytes());
    let hex: String = hash.iter().take(10).map(|b| format!("{b:02x}")).collect();
    format!("neutrino:{hex}")
}

/// The manifest token of a chain with this content (see [`MANIFEST`]).
pub fn token(family: Family, name: &str, digest: &str) -> String {
    let hash = Sha1::digest(format!("{}|{name}|{digest}", family.as_str()).as_bytes());
    // A letter first: a key of digits alone would be read as a number.
    format!("m{}", &hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..14])
}

/// The changes from `observed` to `desired`; empty when the kernel is right.
pub fn plan(desired: &Ruleset, observed: &ObservedRuleset) -> Vec<Op> {
    // The manifest is part of what is wanted: one token per chain.
    let mut desired = desired.clone();
    let mut manifest = Set { kind: SetKind::Tokens, elements: BTreeMap::new() };
    for ((family, name), chain) in &desired.chains {
        manifest.elements.insert(token(*family, name, &digest(chain)), None);
    }
    desired.sets.insert((Family::Inet, MANIFEST.to_string()), manifest);
    let desired = &desired;
    let recorded = observed.sets.get(&(Family::Inet, MANIFEST.to_string()));
    let mut ops = Vec::new();
    for family in Family::ALL {
        if !observed.tables.contains(&family) {
            ops.push(Op::AddTable(family));
        }
    }
    for ((family, name), set) in &desired.sets {
        if !observed.sets.contains_key(&(*family, name.clone())) {
            ops.push(Op::AddSet { family: *family, name: name.clone(), kind: set.kind });
        }
    }
    let mut rewrite: Vec<(&(Family, String), &Chain, String)> = Vec::new();
    for (key, chain) in &desired.chains {
        let want = digest(chain);
        let in_manifest = recorded.is_some_and(|m| m.contains_key(&token(key.0, &key.1, &want)));
        match observed.chains.get(key) {
            Some(Some(have)) if *have == want => {}
            Some(_) if in_manifest => {}
            Some(_) => rewrite.push((key, chain, want)),
            None => {
                ops.push(Op::AddChain { family: key.0, name: key.1.clone(), hook: chain.hook });
                rewrite.push((key, chain, want));
            }
        }
    }
    for ((family, name), chain, want) in rewrite {
        if observed.chains.contains_key(&(*family, name.clone())) {
            ops.push(Op::FlushChain { family: *family, name: name.clone() });
        }
        let last = chain.rules.len().saturating_sub(1);
        for (i, rule) in chain.rules.iter().enumerate() {
            let comment = (i == last).then(|| want.clone());
            ops.push(Op::AddRule { family: *family, chain: name.clone(), rule: rule.clone(), comment });
        }
    }
    let empty = BTreeMap::new();
    for ((family, name), set) in &desired.sets {
        let have = observed.sets.get(&(*family, name.clone())).unwrap_or(&empty);
        if set.kind.is_interval() {
            if *have != set.elements {
                if !have.is_empty() {
                    ops.push(Op::FlushSet { family: *family, name: name.clone() });
                }
                let elements: Vec<_> = set.elements.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                if !elements.is_empty() {
                    ops.push(Op::AddElements { family: *family, set: name.clone(), elements });
                }
            }
            continue;
        }
        // Gone, or with another value: deleted (and added again below).
        let stale: Vec<String> =
            have.iter().filter(|(k, v)| set.elements.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
        if !stale.is_empty() {
            ops.push(Op::DeleteElements { family: *family, set: name.clone(), keys: stale });
        }
        let new: Vec<(String, Option<SetValue>)> =
            set.elements.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !new.is_empty() {
            ops.push(Op::AddElements { family: *family, set: name.clone(), elements: new });
        }
    }
    // What is no longer wanted: chains (after the elements that jumped to them), then sets
    // (after the rules that named them were rewritten).
    for (family, name) in observed.chains.keys() {
        if !desired.chains.contains_key(&(*family, name.clone())) {
            ops.push(Op::FlushChain { family: *family, name: name.clone() });
            ops.push(Op::DeleteChain { family: *family, name: name.clone() });
        }
    }
    for (family, name) in observed.sets.keys() {
        if !desired.sets.contains_key(&(*family, name.clone())) {
            ops.push(Op::DeleteSet { family: *family, name: name.clone() });
        }
    }
    ops
}

/// What the kernel holds after `ops` (for the in-memory data plane and tests).
pub fn apply_to(observed: &mut ObservedRuleset, ops: &[Op]) {
    for op in ops {
        match op {
            Op::AddTable(f) => {
                observed.tables.insert(*f);
            }
            Op::AddSet { family, name, .. } => {
                observed.sets.entry((*family, name.clone())).or_default();
            }
            Op::AddChain { family, name, .. } => {
                observed.chains.entry((*family, name.clone())).or_insert(None);
            }
            Op::FlushChain { family, name } => {
                observed.chains.insert((*family, name.clone()), None);
            }
            Op::AddRule { family, chain, comment, .. } => {
                if let Some(c) = comment {
                    observed.chains.insert((*family, chain.clone()), Some(c.clone()));
                }
            }
            Op::FlushSet { family, name } => {
                observed.sets.insert((*family, name.clone()), BTreeMap::new());
            }
            Op::DeleteElements { family, set, keys } => {
                if let Some(s) = observed.sets.get_mut(&(*family, set.clone())) {
                    for k in keys {
                        s.remove(k);
                    }
                }
            }
            Op::AddElements { family, set, elements } => {
                let s = observed.sets.entry((*family, set.clone())).or_default();
                s.extend(elements.iter().cloned());
            }
            Op::DeleteChain { family, name } => {
                observed.chains.remove(&(*family, name.clone()));
            }
            Op::DeleteSet { family, name } => {
                observed.sets.remove(&(*family, name.clone()));
            }
        }
    }
}
