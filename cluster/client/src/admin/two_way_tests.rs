use std::sync::Mutex;

use tern_core::{Error, ErrorCode, LinkStatus, TableId};

use super::*;
use crate::admin::Link;

/// One cluster: answers from a script, records what it was asked.
struct Fake {
    name: Result<String>,
    add: Result<u64>,
    remove: Result<()>,
    calls: Mutex<Vec<String>>,
    added: Mutex<Vec<NewLink>>,
}

fn fake(name: &str, add: Result<u64>, remove: Result<()>) -> Fake {
    Fake { name: Ok(name.into()), add, remove, calls: Mutex::default(), added: Mutex::default() }
}

fn report(id: u64, l: &NewLink) -> LinkReport {
    LinkReport {
        link: Link {
            id,
            table: TableId(1),
            table_name: l.table.clone(),
            remote_cluster: l.remote_cluster.clone(),
            remote_cluster_id: 2,
            remote_metas: l.remote_metas.clone(),
            remote_table: l.remote_table().to_string(),
            status: LinkStatus::Shipping,
            mode: l.mode,
            max_bytes_per_sec: l.max_bytes_per_sec,
            confirmed: vec![],
            started: vec![],
            created_at_ms: 0,
        },
        partitions: vec![],
        conflicts: 0,
        overwritten: 0,
        conflicts_dropped: 0,
    }
}

impl PairOps for Fake {
    async fn cluster_name(&self) -> Result<String> {
        self.calls.lock().unwrap().push("name".into());
        self.name.clone()
    }

    async fn add_link(&self, link: &NewLink) -> Result<LinkReport> {
        self.calls.lock().unwrap().push("add".into());
        self.added.lock().unwrap().push(link.clone());
        self.add.clone().map(|id| report(id, link))
    }

    async fn remove_link(&self, id: u64) -> Result<LinkReport> {
        self.calls.lock().unwrap().push(format!("remove {id}"));
        self.remove.clone().map(|()| report(id, &new_link()))
    }
}

fn new_link() -> NewLink {
    NewLink {
        table: "users".into(),
        remote_cluster: "dc2".into(),
        remote_metas: vec!["b:1".into()],
        remote_table: Some("people".into()),
        full_sync: true,
        max_bytes_per_sec: 10,
        mode: LinkMode::OneWay,
    }
}

fn calls(f: &Fake) -> Vec<String> {
    f.calls.lock().unwrap().clone()
}

fn refused() -> Error {
    Error::InvalidArgument("table people does not exist".into())
}

#[tokio::test]
async fn both_links_are_added_the_reverse_naming_this_cluster() {
    let (a, b) = (fake("dc1", Ok(3), Ok(())), fake("dc2", Ok(8), Ok(())));
    let pair = add_pair(&a, &b, &["a:1".into()], &new_link()).await.unwrap();
    assert_eq!((pair.own_cluster.as_str(), pair.remote_cluster.as_str()), ("dc1", "dc2"));
    assert_eq!((pair.first.link.id, pair.second.link.id), (3, 8));
    assert_eq!(a.added.lock().unwrap()[0], NewLink { mode: LinkMode::TwoWay, ..new_link() });
    assert_eq!(
        b.added.lock().unwrap()[0],
        NewLink {
            table: "people".into(),
            remote_cluster: "dc1".into(),
            remote_metas: vec!["a:1".into()],
            remote_table: Some("users".into()),
            full_sync: false,
            max_bytes_per_sec: 10,
            mode: LinkMode::TwoWay,
        }
    );
    assert_eq!(calls(&a), ["name", "add"]);
}

#[tokio::test]
async fn a_refused_reverse_removes_the_first_link_again() {
    let (a, b) = (fake("dc1", Ok(3), Ok(())), fake("dc2", Err(refused()), Ok(())));
    let e = add_pair(&a, &b, &["a:1".into()], &new_link()).await.unwrap_err();
    assert_eq!(calls(&a), ["name", "add", "remove 3"]);
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "the reverse's error, classified as it was");
    let text = e.to_string();
    assert!(text.contains("add the reverse link in cluster dc2"), "{text}");
    assert!(text.contains("link 3 in cluster dc1 was removed again"), "{text}");
    assert!(text.contains("table people does not exist"), "{text}");
}

#[tokio::test]
async fn a_failed_rollback_says_how_to_finish_it() {
    let undo = Err(Error::Unavailable("no meta server answered".into()));
    let (a, b) = (fake("dc1", Ok(3), undo), fake("dc2", Err(refused()), Ok(())));
    let e = add_pair(&a, &b, &["a:1".into()], &new_link()).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("removing link 3 in cluster dc1 failed too"), "{text}");
    assert!(text.contains("no meta server answered"), "{text}");
    assert!(text.contains("`tern dup remove 3`"), "{text}");
}

#[tokio::test]
async fn nothing_is_added_when_the_own_name_or_the_first_link_fails() {
    let mut a = fake("dc1", Ok(3), Ok(()));
    a.name = Err(Error::Unavailable("down".into()));
    let b = fake("dc2", Ok(8), Ok(()));
    assert!(add_pair(&a, &b, &[], &new_link()).await.is_err());
    assert_eq!(calls(&a), ["name"]);
    let a = fake("dc1", Err(refused()), Ok(()));
    assert!(add_pair(&a, &b, &[], &new_link()).await.is_err());
    assert_eq!(calls(&a), ["name", "add"]);
    assert!(calls(&b).is_empty(), "the other cluster is never asked");
}
