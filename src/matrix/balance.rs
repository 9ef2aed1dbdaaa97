//! Cases into shards: greedy longest-processing-time (longest case first, each to the
//! lightest shard) over predicted seconds, and the shard count from a budget and a shard's
//! fixed cost. Pure arithmetic, so it is tested (and fuzzed) without a cluster.

/// GitHub's limit of jobs in one matrix.
pub const GITHUB_MATRIX_LIMIT: usize = 256;

/// What a job may cost: at most `max_shards` shards per cell, and, when given, a wall time
/// each job should stay within.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_shards: usize,
    pub target_seconds: Option<f64>,
    /// Cases run at once inside a job.
    pub concurrency: usize,
    /// A shard's fixed cost: cluster up, images loaded, operators installed.
    pub setup_seconds: f64,
}

/// A job's predicted wall time: its fixed cost, then its cases at `concurrency` at once
/// (never less than its longest case).
pub fn wall(seconds: &[f64], concurrency: usize, setup_seconds: f64) -> f64 {
    let sum: f64 = seconds.iter().sum();
    let longest = seconds.iter().copied().fold(0.0, f64::max);
    setup_seconds + (sum / concurrency.max(1) as f64).max(longest)
}

/// `seconds` (one per case) into `shards` groups of indices by LPT. Ties go to the shard
/// with fewer cases, then the first: with no more shards than cases, none is empty.
pub fn lpt(seconds: &[f64], shards: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seconds.len()).collect();
    // Longest first; equal ones in their given order, so a plan is the same every time.
    order.sort_by(|&a, &b| seconds[b].total_cmp(&seconds[a]).then(a.cmp(&b)));
    let mut groups: Vec<(f64, Vec<usize>)> = vec![(0.0, Vec::new()); shards.max(1)];
    for i in order {
        let lightest = (0..groups.len())
            .min_by(|&a, &b| groups[a].0.total_cmp(&groups[b].0).then(groups[a].1.len().cmp(&groups[b].1.len())))
            .unwrap_or(0);
        groups[lightest].0 += seconds[i];
        groups[lightest].1.push(i);
    }
    groups.into_iter().map(|(_, cases)| cases).collect()
}

/// The shard count and the groups: with a target, the fewest shards whose every job is
/// predicted within it (or the most allowed, when none is); without one, the fewest shards
/// that give the shortest predicted wall time — a shard that shortens nothing is not added.
/// Never more shards than cases, so never an empty one.
pub fn choose(seconds: &[f64], budget: Budget) -> Vec<Vec<usize>> {
    let most = budget.max_shards.clamp(1, seconds.len().max(1));
    let walls = |groups: &[Vec<usize>]| {
        groups
            .iter()
            .map(|g| {
                let s: Vec<f64> = g.iter().map(|&i| seconds[i]).collect();
                wall(&s, budget.concurrency, budget.setup_seconds)
            })
            .fold(0.0, f64::max)
    };
    let mut best: Option<(f64, Vec<Vec<usize>>)> = None;
    for k in 1..=most {
        let groups = lpt(seconds, k);
        let w = walls(&groups);
        if budget.target_seconds.is_some_and(|t| w <= t) {
            return groups;
        }
        // Strictly shorter (by more than rounding) to be worth one more job.
        if best.as_ref().is_none_or(|(b, _)| w < b - 1e-6) {
            best = Some((w, groups));
        }
    }
    match (budget.target_seconds, best) {
        (Some(_), _) => lpt(seconds, most),
        (None, Some((_, groups))) => groups,
        (None, None) => lpt(seconds, 1),
    }
}

/// Whether `groups` is a partition of `0..n` with no empty group: every index once.
pub fn is_partition(groups: &[Vec<usize>], n: usize) -> Result<(), String> {
    let mut seen = vec![0u32; n];
    for (g, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(format!("shard {} is empty", g + 1));
        }
        for &i in group {
            match seen.get_mut(i) {
                Some(count) => *count += 1,
                None => return Err(format!("shard {} holds case #{i}, which is not in the selection", g + 1)),
            }
        }
    }
    match seen.iter().position(|&c| c != 1) {
        Some(i) if seen[i] == 0 => Err(format!("case #{i} is in no shard")),
        Some(i) => Err(format!("case #{i} is in {} shards", seen[i])),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn loads(seconds: &[f64], groups: &[Vec<usize>]) -> Vec<f64> {
        groups.iter().map(|g| g.iter().map(|&i| seconds[i]).sum()).collect()
    }

    #[test]
    fn lpt_gives_the_longest_case_a_shard_of_its_own_and_evens_out_the_rest() {
        let seconds = [300.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 100.0, 100.0, 100.0];
        let groups = lpt(&seconds, 3);
        assert_eq!(groups[0], vec![0], "the 300 s case alone");
        // LPT: 100+100 then the 20s on the lighter: 220 and 200 (the optimum, 210 and 210, is
        // within one short case).
        assert_eq!(loads(&seconds, &groups[1..]), vec![220.0, 200.0]);
        assert_eq!(groups[1], vec![7, 9, 6], "the order a shard's cases are given in is LPT's");
    }

    #[test]
    fn more_shards_than_cases_is_one_case_each_and_zero_seconds_cases_still_spread() {
        assert_eq!(
            choose(&[5.0, 5.0], Budget { max_shards: 10, target_seconds: None, concurrency: 1, setup_seconds: 0.0 })
                .len(),
            2
        );
        let groups = lpt(&[0.0, 0.0, 0.0], 3);
        assert!(groups.iter().all(|g| g.len() == 1), "{groups:?}");
    }

    #[test]
    fn a_target_takes_the_fewest_shards_that_meet_it_and_setup_counts() {
        let seconds = [60.0; 10];
        let budget =
            |target| Budget { max_shards: 10, target_seconds: Some(target), concurrency: 1, setup_seconds: 100.0 };
        // 600 s of cases: 100 + 600/k <= 400 → k = 2.
        assert_eq!(choose(&seconds, budget(400.0)).len(), 2);
        // 100 + 60 is the floor: a target below it gets the most shards allowed.
        assert_eq!(choose(&seconds, budget(120.0)).len(), 10);
    }

    #[test]
    fn without_a_target_a_shard_that_shortens_nothing_is_not_added() {
        // One 500 s case dominates: past two shards nothing gets shorter.
        let seconds = [500.0, 50.0, 50.0, 50.0];
        let groups =
            choose(&seconds, Budget { max_shards: 4, target_seconds: None, concurrency: 1, setup_seconds: 30.0 });
        assert_eq!(groups.len(), 2, "{groups:?}");
    }

    #[test]
    fn is_partition_names_an_empty_shard_a_missing_case_and_a_twice_placed_one() {
        assert!(is_partition(&[vec![0], vec![1, 2]], 3).is_ok());
        assert_eq!(is_partition(&[vec![0], vec![]], 1).unwrap_err(), "shard 2 is empty");
        assert_eq!(is_partition(&[vec![0]], 2).unwrap_err(), "case #1 is in no shard");
        assert_eq!(is_partition(&[vec![0], vec![0, 1]], 2).unwrap_err(), "case #0 is in 2 shards");
        assert!(is_partition(&[vec![5]], 1).unwrap_err().contains("not in the selection"));
    }

    #[test]
    fn wall_is_setup_plus_the_larger_of_the_spread_and_the_longest_case() {
        assert_eq!(wall(&[10.0, 10.0, 10.0, 10.0], 2, 5.0), 25.0);
        assert_eq!(wall(&[100.0, 1.0], 4, 5.0), 105.0);
        assert_eq!(wall(&[], 4, 5.0), 5.0);
    }

    proptest! {
        #[test]
        fn every_choice_is_a_partition_without_empty_shards_and_greedy_bounds_hold(
            seconds in prop::collection::vec(0.0f64..10_000.0, 1..200),
            max_shards in 1usize..300,
            target in prop::option::of(0.0f64..50_000.0),
        ) {
            let groups = choose(&seconds, Budget { max_shards, target_seconds: target, concurrency: 3, setup_seconds: 60.0 });
            prop_assert!(groups.len() <= max_shards.min(seconds.len()));
            prop_assert_eq!(is_partition(&groups, seconds.len()), Ok(()));
            // Greedy to the lightest shard: the heaviest shard is at most the mean plus the
            // longest case, and no two shards differ by more than the longest case.
            let k = groups.len() as f64;
            let longest = seconds.iter().copied().fold(0.0, f64::max);
            let loads = loads(&seconds, &groups);
            let worst = loads.iter().copied().fold(0.0, f64::max);
            let lightest = loads.iter().copied().fold(f64::INFINITY, f64::min);
            prop_assert!(worst <= seconds.iter().sum::<f64>() / k + longest + 1e-6);
            prop_assert!(worst - lightest <= longest + 1e-6, "worst {} lightest {} longest {}", worst, lightest, longest);
        }
    }
}
