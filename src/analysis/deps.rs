//! Declared dependencies between containers: `hms.depends_on=NAME,…` and Compose's own
//! `com.docker.compose.depends_on` (`SERVICE:CONDITION:RESTART,…`, naming Compose services of
//! the same project). Pure: who depends on whom is read from labels, never from traffic.

use std::collections::BTreeMap;

/// HMS's label: the names of the containers this one depends on, comma-separated.
pub const DEPENDS_LABEL: &str = "hms.depends_on";
/// Compose's label: `SERVICE:CONDITION:RESTART`, comma-separated.
pub const COMPOSE_DEPENDS_LABEL: &str = "com.docker.compose.depends_on";
/// Compose's service of a container.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
/// Compose's project of a container.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";

/// One dependency as declared.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependency {
    /// A container by name (`hms.depends_on`).
    Container(String),
    /// A Compose service of the dependent's project.
    Service(String),
}

/// What the container with `labels` declares it depends on, without duplicates, in order.
pub fn depends_on(labels: &BTreeMap<String, String>) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    let own = labels.get(DEPENDS_LABEL).into_iter().flat_map(|v| v.split(','));
    let compose = labels.get(COMPOSE_DEPENDS_LABEL).into_iter().flat_map(|v| v.split(','));
    let declared = own
        .filter_map(|n| name(n.trim().trim_start_matches('/')).map(Dependency::Container))
        .chain(compose.filter_map(|e| name(e.split(':').next().unwrap_or("").trim()).map(Dependency::Service)));
    for d in declared {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn name(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Whether `dep`, declared by a container labelled `dependent`, names the container called
/// `name` with `labels`: by its name, or by its Compose service in the dependent's project.
pub fn names(
    dep: &Dependency,
    dependent: &BTreeMap<String, String>,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    match dep {
        Dependency::Container(n) => n == name.trim_start_matches('/'),
        Dependency::Service(s) => {
            labels.get(COMPOSE_SERVICE_LABEL) == Some(s)
                && labels.get(COMPOSE_PROJECT_LABEL) == dependent.get(COMPOSE_PROJECT_LABEL)
        }
    }
}

/// The names of the containers among `all` (name, labels) that depend on the container called
/// `name` with `labels`; never itself.
pub fn dependents<'a>(
    name: &str,
    labels: &BTreeMap<String, String>,
    all: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, String>)>,
) -> Vec<&'a str> {
    all.into_iter()
        .filter(|(n, l)| *n != name && depends_on(l).iter().any(|d| names(d, l, name, labels)))
        .map(|(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn both_labels_are_read_and_compose_conditions_dropped() {
        let l = labels(&[
            (DEPENDS_LABEL, " db , /cache,,db"),
            (COMPOSE_DEPENDS_LABEL, "redis:service_started:false,db:service_healthy:true"),
        ]);
        let want = [
            Dependency::Container("db".into()),
            Dependency::Container("cache".into()),
            Dependency::Service("redis".into()),
            Dependency::Service("db".into()),
        ];
        assert_eq!(depends_on(&l), want);
        assert!(depends_on(&labels(&[(DEPENDS_LABEL, " , ")])).is_empty());
        assert!(depends_on(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_compose_service_is_found_only_in_the_same_project() {
        let web = labels(&[(COMPOSE_PROJECT_LABEL, "shop"), (COMPOSE_DEPENDS_LABEL, "db:service_started:false")]);
        let db = labels(&[(COMPOSE_PROJECT_LABEL, "shop"), (COMPOSE_SERVICE_LABEL, "db")]);
        let other = labels(&[(COMPOSE_PROJECT_LABEL, "blog"), (COMPOSE_SERVICE_LABEL, "db")]);
        let all = [("shop-web-1", &web), ("shop-db-1", &db), ("blog-db-1", &other)];
        assert_eq!(dependents("shop-db-1", &db, all), ["shop-web-1"]);
        assert!(dependents("blog-db-1", &other, all).is_empty());
    }

    #[test]
    fn a_container_named_in_hms_depends_on_has_its_dependents() {
        let (a, b) = (labels(&[(DEPENDS_LABEL, "db")]), labels(&[(DEPENDS_LABEL, "db,a")]));
        let db = BTreeMap::new();
        let all = [("a", &a), ("b", &b), ("db", &db)];
        assert_eq!(dependents("db", &db, all), ["a", "b"]);
        assert_eq!(dependents("a", &a, all), ["b"]);
        assert!(dependents("b", &b, all).is_empty());
    }

    proptest! {
        #[test]
        fn parsing_any_label_never_panics_and_names_nothing_empty(own in ".{0,40}", compose in ".{0,40}") {
            let l = labels(&[(DEPENDS_LABEL, own.as_str()), (COMPOSE_DEPENDS_LABEL, compose.as_str())]);
            let deps = depends_on(&l);
            for d in &deps {
                let (Dependency::Container(n) | Dependency::Service(n)) = d;
                prop_assert!(!n.is_empty());
            }
            let mut sorted = deps.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), deps.len());
        }

        #[test]
        fn nobody_depends_on_itself(n in "[a-z]{1,8}") {
            let l = labels(&[(DEPENDS_LABEL, n.as_str())]);
            prop_assert!(dependents(&n, &l, [(n.as_str(), &l)]).is_empty());
        }
    }
}
