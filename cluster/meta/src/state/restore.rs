//! Tables being restored from a backup (`tern backup restore`, docs/backup.md "Restore").
//!
//! A restore creates its table in the *restoring* state, naming the backup: the table is placed
//! and replicated like any other (its status stays `Serving`, so partitions are created, moved
//! and balanced as usual), but its replica servers refuse client reads and writes (`RESTORING`)
//! and the meta server gives clients no route to it, until the restore tool says it is complete.
//! So nobody ever sees half a table. The same backup into the same name finds the table again
//! (a resumed restore); any other table of that name is refused, named.

use super::{Command, MetaState, Response, TableStatus};

impl MetaState {
    pub(super) fn begin_restore(
        &mut self,
        name: &str,
        partitions: u32,
        replicas: u32,
        backup: &str,
    ) -> Response {
        if let Some(t) = self.table_by_name(name) {
            return match (&t.status, t.restoring.as_deref()) {
                (TableStatus::Serving, Some(b)) if b == backup => {
                    if t.partitions != partitions {
                        Response::Refused(format!(
                            "table {name:?} is being restored from backup {backup} with {} partitions, \
                             not {partitions}: re-run with --partitions {} or drop it",
                            t.partitions, t.partitions
                        ))
                    } else {
                        Response::Restoring { table: t.clone(), resumed: true }
                    }
                }
                (TableStatus::Serving, Some(b)) => Response::Refused(format!(
                    "table {name:?} is being restored from another backup, {b}: finish that restore, \
                     or drop the table to abandon it"
                )),
                (TableStatus::Serving, None) => Response::Refused(format!(
                    "table {name:?} already exists and serves: restore into a new table name"
                )),
                (TableStatus::Dropped { .. }, _) => Response::Refused(format!(
                    "table {name:?} was dropped and is kept for recall: restore into another name, \
                     or wait until it is purged"
                )),
            };
        }
        match self.apply(&Command::CreateTable { name: name.to_string(), partitions, replicas }) {
            Response::Table(_) => {}
            other => return other,
        }
        let Some(t) = self.tables.values_mut().find(|t| t.name == name) else {
            return Response::Refused(format!("table {name:?} was not created"));
        };
        t.restoring = Some(backup.to_string());
        Response::Restoring { table: t.clone(), resumed: false }
    }

    pub(super) fn finish_restore(&mut self, name: &str, backup: &str) -> Response {
        match self.tables.values_mut().find(|t| t.name == name && t.status == TableStatus::Serving) {
            Some(t) if t.restoring.as_deref() == Some(backup) => {
                t.restoring = None;
                Response::Table(t.clone())
            }
            Some(t) => Response::Refused(match &t.restoring {
                Some(b) => format!("table {name:?} is being restored from backup {b}, not {backup}"),
                None => format!("table {name:?} is not being restored (it serves)"),
            }),
            None => Response::Refused(format!("no table {name:?} being restored")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begin(s: &mut MetaState, name: &str, partitions: u32, backup: &str) -> Response {
        s.apply(&Command::BeginRestore { name: name.into(), partitions, replicas: 3, backup: backup.into() })
    }

    #[test]
    fn a_restore_creates_a_restoring_table_resumes_it_and_finishes_it() {
        let mut s = MetaState::default();
        let Response::Restoring { table, resumed: false } = begin(&mut s, "r", 8, "B1") else { panic!() };
        assert_eq!((table.partitions, table.restoring.as_deref()), (8, Some("B1")));
        assert!(matches!(begin(&mut s, "r", 8, "B1"), Response::Restoring { resumed: true, .. }));
        let r = begin(&mut s, "r", 4, "B1");
        assert!(matches!(&r, Response::Refused(m) if m.contains("--partitions 8")), "{r:?}");
        let r = begin(&mut s, "r", 8, "B2");
        assert!(matches!(&r, Response::Refused(m) if m.contains("another backup, B1")), "{r:?}");
        let r = s.apply(&Command::FinishRestore { name: "r".into(), backup: "B2".into() });
        assert!(matches!(r, Response::Refused(_)));
        let r = s.apply(&Command::FinishRestore { name: "r".into(), backup: "B1".into() });
        assert!(matches!(r, Response::Table(t) if t.restoring.is_none()));
        // Done: the same restore again finds a serving table and refuses it.
        let r = begin(&mut s, "r", 8, "B1");
        assert!(matches!(&r, Response::Refused(m) if m.contains("already exists and serves")), "{r:?}");
    }

    #[test]
    fn an_existing_or_dropped_table_is_refused_by_name_and_state_survives_json() {
        let mut s = MetaState::default();
        s.apply(&Command::CreateTable { name: "t".into(), partitions: 2, replicas: 1 });
        let r = begin(&mut s, "t", 2, "B1");
        assert!(matches!(&r, Response::Refused(m) if m.contains("\"t\"")), "{r:?}");
        s.apply(&Command::DropTable { name: "t".into(), at_ms: 1 });
        let r = begin(&mut s, "t", 2, "B1");
        assert!(matches!(&r, Response::Refused(m) if m.contains("dropped")), "{r:?}");
        begin(&mut s, "r", 2, "B1");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""restoring":"B1""#), "{json}");
        assert_eq!(serde_json::from_str::<MetaState>(&json).unwrap(), s);
        // A table that is not restoring keeps the JSON older builds wrote.
        assert_eq!(json.matches("restoring").count(), 1, "{json}");
    }
}
