//! Redis's string commands on Tern. Each uses one atomic Tern op where one exists (a plain set,
//! check-and-set for NX/XX/GET, check-and-mutate for GETDEL, incr for INCR*), and the
//! read-check-write loop of [`Db::update`] where none does (APPEND, SET ... KEEPTTL).

use futures::future::join_all;
use tern_core::mutation::CheckType;

use super::Reply;
use super::args::{Cond, Expiry, SetOptions};
use super::db::{Change, Db, Res, check, old_value};

fn ok_or_nil(passed: bool) -> Reply {
    if passed { Reply::ok() } else { Reply::Nil }
}

fn bulk_or_nil(v: Option<&[u8]>) -> Reply {
    v.map_or(Reply::Nil, |v| Reply::Bulk(v.to_vec()))
}

pub async fn get(db: Db<'_>, key: &[u8]) -> Res<Reply> {
    Ok(bulk_or_nil(db.get(key).await?.as_deref()))
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL] (SETEX and PSETEX too).
pub async fn set(db: Db<'_>, key: &[u8], value: &[u8], o: SetOptions) -> Res<Reply> {
    let kind = match o.cond {
        Cond::Always => CheckType::NoCheck,
        Cond::IfAbsent => CheckType::NotExist,
        Cond::IfPresent => CheckType::Exist,
    };
    let plain = o.cond == Cond::Always && !o.get;
    let ttl_secs = match o.expiry {
        // A new key has no TTL to keep: NX with KEEPTTL is NX.
        Expiry::Keep if o.cond != Cond::IfAbsent => {
            return db
                .update(key, true, |cur| {
                    let passed = match o.cond {
                        Cond::IfPresent => cur.value.is_some(),
                        _ => true,
                    };
                    let change = match passed {
                        true => Change::Put {
                            value: value.to_vec(),
                            ttl_secs: cur.ttl.map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX)),
                        },
                        false => Change::Keep,
                    };
                    Ok((change, if o.get { bulk_or_nil(cur.value) } else { ok_or_nil(passed) }))
                })
                .await;
        }
        // Written and expired at once: what remains is the condition, the old value, and no key.
        Expiry::Expired if plain => {
            db.write(tern_core::WriteOp::Del { hash_key: key.to_vec(), sort_key: vec![] }).await?;
            return Ok(Reply::ok());
        }
        Expiry::Expired => {
            let c = db.check_and_delete(key, check(kind), o.get).await?;
            return Ok(if o.get { old_value(&c) } else { ok_or_nil(c.passed) });
        }
        Expiry::Secs(n) => n,
        Expiry::Persist | Expiry::Keep => 0,
    };
    if plain {
        db.set(key, value.to_vec(), ttl_secs).await?;
        return Ok(Reply::ok());
    }
    let c = db.check_and_set(key, check(kind), value.to_vec(), ttl_secs, o.get).await?;
    Ok(if o.get { old_value(&c) } else { ok_or_nil(c.passed) })
}

pub async fn setnx(db: Db<'_>, key: &[u8], value: &[u8]) -> Res<Reply> {
    let c = db.check_and_set(key, check(CheckType::NotExist), value.to_vec(), 0, false).await?;
    Ok(Reply::Integer(i64::from(c.passed)))
}

/// GETSET: SET ... GET, which drops any TTL.
pub async fn getset(db: Db<'_>, key: &[u8], value: &[u8]) -> Res<Reply> {
    let c = db.check_and_set(key, check(CheckType::NoCheck), value.to_vec(), 0, true).await?;
    Ok(old_value(&c))
}

pub async fn getdel(db: Db<'_>, key: &[u8]) -> Res<Reply> {
    let c = db.check_and_delete(key, check(CheckType::NoCheck), true).await?;
    Ok(old_value(&c))
}

/// INCR, INCRBY, DECR, DECRBY: Tern's incr keeps the TTL, as Redis does.
pub async fn incr_by(db: Db<'_>, key: &[u8], delta: i64) -> Res<Reply> {
    Ok(Reply::Integer(db.incr(key, delta).await?))
}

pub async fn strlen(db: Db<'_>, key: &[u8]) -> Res<Reply> {
    let len = db.get(key).await?.map_or(0, |v| v.len());
    Ok(Reply::Integer(i64::try_from(len).unwrap_or(i64::MAX)))
}

/// APPEND keeps the TTL; Tern has no append, so it is a read-check-write.
pub async fn append(db: Db<'_>, key: &[u8], suffix: &[u8]) -> Res<Reply> {
    db.update(key, true, |cur| {
        let mut value = cur.value.unwrap_or_default().to_vec();
        value.extend_from_slice(suffix);
        let len = i64::try_from(value.len()).unwrap_or(i64::MAX);
        let ttl_secs = cur.ttl.map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX));
        Ok((Change::Put { value, ttl_secs }, Reply::Integer(len)))
    })
    .await
}

/// MGET: every key read concurrently (they may live in different partitions).
pub async fn mget(db: Db<'_>, keys: &[Vec<u8>]) -> Res<Reply> {
    let values = join_all(keys.iter().map(|k| db.get(k))).await;
    let values = values.into_iter().collect::<Res<Vec<_>>>()?;
    Ok(Reply::Array(values.iter().map(|v| bulk_or_nil(v.as_deref())).collect()))
}

/// MSET: every key set concurrently. Not atomic across keys (each may be in another
/// partition): a failure leaves the others set. A key given twice gets its last value, as in
/// Redis.
pub async fn mset(db: Db<'_>, pairs: &[Vec<u8>]) -> Res<Reply> {
    let mut last: Vec<(&[u8], &[u8])> = Vec::with_capacity(pairs.len() / 2);
    let mut seen = std::collections::HashMap::new();
    for kv in pairs.chunks_exact(2) {
        match seen.get(kv[0].as_slice()) {
            Some(&i) => last[i] = (kv[0].as_slice(), kv[1].as_slice()),
            None => {
                seen.insert(kv[0].as_slice(), last.len());
                last.push((kv[0].as_slice(), kv[1].as_slice()));
            }
        }
    }
    let done = join_all(last.iter().map(|(k, v)| db.set(k, v.to_vec(), 0))).await;
    done.into_iter().collect::<Res<Vec<()>>>()?;
    Ok(Reply::ok())
}
