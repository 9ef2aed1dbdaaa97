//! The test helpers themselves: a helper that reads the cluster must fail when its tool
//! fails, or a broken kubectl would read as "nothing left behind".

mod support;

#[test]
fn a_failing_kubectl_fails_the_helper_instead_of_reading_as_empty() {
    // `false` plays a kubectl that exits 1 with no output: the empty answer a naive helper
    // would take for "no namespace".
    let broken = std::panic::catch_unwind(|| support::program_ok("false", &["get", "ns", "-o", "name"]));
    assert!(broken.is_err(), "a failing kubectl must fail the test");
    let listed = support::kubectl_ok(&["get", "ns", "kube-system", "-o", "name"]);
    assert_eq!(listed.trim(), "namespace/kube-system");
}
