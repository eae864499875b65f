//! Sweeps and replicates: declared stages → concrete stage variants.
//!
//! A stage's *axes* are its own sweep keys, the axes it inherits from every upstream stage it
//! depends on directly (fan-out: one variant per upstream variant), and `seed` when it is
//! replicated or inherits replication. A dependency written `stage:NAME[*]/OUT` gathers instead:
//! the stage does not inherit NAME's axes and receives every NAME variant that agrees with its
//! own coordinates. `stage:NAME[seed=*]/OUT` gathers only the replicates: the stage fans out over
//! NAME's sweep axes like a plain dependency and receives, per variant, every seed of the matching
//! NAME variants. Variant names list the coordinates, sweep axes in declared order and `seed`
//! last: `train[lr=0.001,seed=2]`. Axes of one `zip` group share a `group` and move together:
//! one variant per position, not per combination.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::experiment::{Dep, Resources, Stage, coord_text};
use crate::kinds::StageKind;

/// A declared stage after validation, before expansion.
#[derive(Debug, Clone)]
pub struct BaseStage {
    pub name: String,
    pub kind: StageKind,
    pub cmd: Option<String>,
    pub deps: BTreeMap<String, DepRef>,
    pub code: Vec<String>,
    pub outs: BTreeMap<String, String>,
    pub params: BTreeMap<String, Json>,
    pub config: Json,
    pub resources: Resources,
    pub retries: u32,
    pub replicate: bool,
    pub executor: Option<super::experiment::ExecutorKind>,
}

impl BaseStage {
    pub fn upstream_names(&self) -> impl Iterator<Item = &str> {
        self.deps.values().filter_map(|d| match d {
            DepRef::Stage { stage, .. } => Some(stage.as_str()),
            DepRef::Path(_) => None,
        })
    }
}

/// A dependency as declared.
#[derive(Debug, Clone)]
pub enum DepRef {
    Path(String),
    Stage {
        stage: String,
        out: String,
        gather: Gather,
    },
}

/// How a stage dependency takes an upstream stage's variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gather {
    /// `stage:NAME/OUT`: fan out, one variant per upstream variant.
    No,
    /// `stage:NAME[*]/OUT`: every variant agreeing with this stage's coordinates.
    All,
    /// `stage:NAME[seed=*]/OUT`: fan out over the sweep axes, gather the seeds.
    Seeds,
}

/// One sweep key: which stage, where in its params/config, which values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Index of the swept stage among the declared stages.
    pub stage: usize,
    /// The sweep key as written (`train.params.lr`): the axis identity.
    pub id: String,
    /// Short label used in variant names (`lr`).
    pub label: String,
    /// `params` or `config`.
    pub section: String,
    pub path: Vec<String>,
    pub values: Vec<Json>,
    /// Axes with the same group are zipped (equally long, one stage); others have their own.
    pub group: usize,
}

const SEED_AXIS: &str = "seed";

/// The most concrete stages one experiment may expand into. Planning costs a few KiB per
/// stage, so a grid past this is refused before anything is allocated, with its size.
pub const MAX_STAGES: usize = 100_000;

/// A sweep that would expand past [`MAX_STAGES`].
#[derive(Debug, Clone, PartialEq)]
pub struct TooManyStages {
    /// The declared stage where the limit was crossed.
    pub stage: String,
    /// Its axes and their sizes, `lr (10) × seed (5)`.
    pub axes: String,
    /// Its number of variants (saturating at `u128::MAX`).
    pub variants: u128,
    /// Concrete stages before it.
    pub before: usize,
}

impl std::fmt::Display for TooManyStages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let big = |n: u128| {
            if n == u128::MAX {
                "more than 10^38".to_string()
            } else {
                n.to_string()
            }
        };
        write!(
            f,
            "the sweep expands stage `{}` into {} variants ({}), {} stages in all; an experiment \
             may have at most {MAX_STAGES}: sweep fewer values or split the grid into several \
             experiments",
            self.stage,
            big(self.variants),
            self.axes,
            big(self.variants.saturating_add(self.before as u128)),
        )
    }
}

/// Expands declared stages (visited in `order`, a topological order) into concrete stages,
/// themselves in topological order.
pub fn expand(
    bases: &[BaseStage],
    order: &[usize],
    axes: &[Axis],
    seeds: Option<&[u64]>,
    seed: u64,
) -> Result<Vec<Stage>, TooManyStages> {
    let by_name: HashMap<&str, usize> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.as_str(), i))
        .collect();
    let seed_values: Vec<Json> = seeds
        .unwrap_or(&[])
        .iter()
        .map(|s| Json::from(*s))
        .collect();
    let axis_by_id: HashMap<&str, &Axis> = axes.iter().map(|a| (a.id.as_str(), a)).collect();

    let mut axes_of: Vec<Vec<String>> = vec![Vec::new(); bases.len()];
    // Per declared stage: projection key → index of the concrete stage.
    let mut variants_of: Vec<Vec<(Vec<Json>, usize)>> = vec![Vec::new(); bases.len()];
    let mut lookup_of: Vec<HashMap<String, usize>> = vec![HashMap::new(); bases.len()];
    let mut stages: Vec<Stage> = Vec::new();

    for &b in order {
        let base = &bases[b];
        let mut list: Vec<String> = Vec::new();
        let mut seeded = base.replicate && !seed_values.is_empty();
        for dep in base.deps.values() {
            if let DepRef::Stage { stage, gather, .. } = dep
                && *gather != Gather::All
            {
                for a in &axes_of[by_name[stage.as_str()]] {
                    if a == SEED_AXIS {
                        // A gather over the seeds does not make this stage a replicate.
                        seeded |= *gather == Gather::No;
                    } else if !list.contains(a) {
                        list.push(a.clone());
                    }
                }
            }
        }
        for a in axes.iter().filter(|a| a.stage == b) {
            list.push(a.id.clone());
        }
        if seeded {
            list.push(SEED_AXIS.to_string());
        }
        let values: Vec<&[Json]> = list
            .iter()
            .map(|id| {
                if id == SEED_AXIS {
                    seed_values.as_slice()
                } else {
                    axis_by_id[id.as_str()].values.as_slice()
                }
            })
            .collect();
        let labels = labels_for(&list, &axis_by_id);
        // The grid's dimensions: list indices grouped by zip group, in first-seen order.
        let group_of = |id: &str| axis_by_id.get(id).map(|a| a.group);
        let mut dims: Vec<Vec<usize>> = Vec::new();
        for (i, id) in list.iter().enumerate() {
            let g = group_of(id);
            match dims
                .iter_mut()
                .find(|d| g.is_some() && group_of(&list[d[0]]) == g)
            {
                Some(d) => d.push(i),
                None => dims.push(vec![i]),
            }
        }
        let variants = dims
            .iter()
            .fold(1u128, |n, d| n.saturating_mul(values[d[0]].len() as u128));
        if variants.saturating_add(stages.len() as u128) > MAX_STAGES as u128 {
            let axes: Vec<String> = dims
                .iter()
                .map(|d| {
                    let names: Vec<&str> = d.iter().map(|&i| labels[i].as_str()).collect();
                    format!("{} ({})", names.join("+"), values[d[0]].len())
                })
                .collect();
            return Err(TooManyStages {
                stage: base.name.clone(),
                axes: axes.join(" × "),
                variants,
                before: stages.len(),
            });
        }

        for combo in grid(&values, &dims) {
            let coords: Vec<(String, Json)> =
                labels.iter().cloned().zip(combo.iter().cloned()).collect();
            let name = if coords.is_empty() {
                base.name.clone()
            } else {
                let inner: Vec<String> = coords
                    .iter()
                    .map(|(l, v)| format!("{l}={}", coord_text(v)))
                    .collect();
                format!("{}[{}]", base.name, inner.join(","))
            };
            let at = |id: &str| list.iter().position(|a| a == id).map(|i| &combo[i]);

            let mut params = base.params.clone();
            let mut config = base.config.clone();
            for a in axes.iter().filter(|a| a.stage == b) {
                let v = at(&a.id).expect("own axis is in the list").clone();
                if a.section == "params" {
                    set_path(&mut params, &a.path, v);
                } else {
                    set_json_path(&mut config, &a.path, v);
                }
            }
            let stage_seed = match at(SEED_AXIS) {
                Some(v) => v.as_u64().expect("seeds are u64"),
                None => seed,
            };

            let mut deps = BTreeMap::new();
            for (dep_name, dep) in &base.deps {
                let resolved = match dep {
                    DepRef::Path(p) => Dep::Path(p.clone()),
                    DepRef::Stage { stage, out, gather } => {
                        let gather = *gather != Gather::No;
                        let u = by_name[stage.as_str()];
                        let idx = if gather {
                            variants_of[u]
                                .iter()
                                .filter(|(ucoords, _)| {
                                    axes_of[u]
                                        .iter()
                                        .zip(ucoords)
                                        .all(|(id, v)| at(id).is_none_or(|mine| mine == v))
                                })
                                .map(|(_, i)| *i)
                                .collect()
                        } else {
                            let key = projection(&axes_of[u], |id| at(id));
                            vec![lookup_of[u][&key]]
                        };
                        Dep::Stage {
                            stages: idx,
                            out: out.clone(),
                            gather,
                        }
                    }
                };
                deps.insert(dep_name.clone(), resolved);
            }

            let index = stages.len();
            lookup_of[b].insert(projection(&list, |id| at(id)), index);
            variants_of[b].push((combo.clone(), index));
            stages.push(Stage {
                name,
                base: base.name.clone(),
                kind: base.kind,
                cmd: base.cmd.clone(),
                deps,
                code: base.code.clone(),
                outs: base.outs.clone(),
                params,
                config,
                resources: base.resources.clone(),
                retries: base.retries,
                seed: stage_seed,
                coords,
                executor: base.executor,
            });
        }
        axes_of[b] = list;
    }
    Ok(stages)
}

/// Short labels, falling back to the full sweep key where two axes share a label.
fn labels_for(list: &[String], axis_by_id: &HashMap<&str, &Axis>) -> Vec<String> {
    let short: Vec<String> = list
        .iter()
        .map(|id| {
            axis_by_id
                .get(id.as_str())
                .map_or(id.clone(), |a| a.label.clone())
        })
        .collect();
    short
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if short.iter().filter(|o| *o == l).count() > 1 {
                list[i].clone()
            } else {
                l.clone()
            }
        })
        .collect()
}

fn projection<'a>(axes: &[String], at: impl Fn(&str) -> Option<&'a Json>) -> String {
    let mut key = String::new();
    for id in axes {
        key.push_str(id);
        key.push('=');
        key.push_str(&at(id).map(Json::to_string).unwrap_or_default());
        key.push('\u{1f}');
    }
    key
}

/// Every combination of the dimensions' positions (the last dimension fastest), as one value
/// per axis: a zipped dimension sets all its axes from one position.
fn grid(values: &[&[Json]], dims: &[Vec<usize>]) -> Vec<Vec<Json>> {
    let mut positions: Vec<Vec<usize>> = vec![Vec::new()];
    for d in dims {
        let len = values[d[0]].len();
        let mut next = Vec::with_capacity(positions.len() * len);
        for prefix in &positions {
            for k in 0..len {
                let mut p = prefix.clone();
                p.push(k);
                next.push(p);
            }
        }
        positions = next;
    }
    positions
        .into_iter()
        .map(|pos| {
            let mut combo = vec![Json::Null; values.len()];
            for (d, &k) in dims.iter().zip(&pos) {
                for &i in d {
                    combo[i] = values[i][k].clone();
                }
            }
            combo
        })
        .collect()
}

fn set_path(map: &mut BTreeMap<String, Json>, path: &[String], v: Json) {
    if let Some(slot) = map.get_mut(&path[0]) {
        if path.len() == 1 {
            *slot = v;
        } else {
            set_json_path(slot, &path[1..], v);
        }
    }
}

fn set_json_path(root: &mut Json, path: &[String], v: Json) {
    let mut cur = root;
    for p in path {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    *cur = v;
}
