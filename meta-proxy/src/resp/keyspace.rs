//! Redis's key commands on Tern: DEL/UNLINK, EXISTS, TYPE, and expiry (EXPIRE, PEXPIRE,
//! PERSIST, TTL, PTTL). Tern keeps expiries in whole seconds: TTL is exact to the second, PTTL
//! is it times 1000.

use futures::future::join_all;
use tern_core::mutation::CheckType;
use tern_core::read::Ttl;

use super::Reply;
use super::args::{ExpireRequest, ttl_secs};
use super::db::{Change, Db, Res, check};

fn count(n: usize) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// DEL and UNLINK: per key, a delete that passes only if the key exists (so the count is
/// exact, also for a key given twice), all keys concurrently. Not atomic across keys.
pub async fn del(db: Db<'_>, keys: &[Vec<u8>]) -> Res<Reply> {
    let done = join_all(keys.iter().map(|k| db.check_and_delete(k, check(CheckType::Exist), false))).await;
    let done = done.into_iter().collect::<Res<Vec<_>>>()?;
    Ok(count(done.iter().filter(|c| c.passed).count()))
}

/// EXISTS counts a key given twice twice, as Redis does. Asks for the TTL, not the value (no
/// value crosses the network).
pub async fn exists(db: Db<'_>, keys: &[Vec<u8>]) -> Res<Reply> {
    let found = join_all(keys.iter().map(|k| db.ttl(k))).await;
    let found = found.into_iter().collect::<Res<Vec<_>>>()?;
    Ok(count(found.iter().filter(|t| t.is_some()).count()))
}

pub async fn key_type(db: Db<'_>, key: &[u8]) -> Res<Reply> {
    let kind = if db.ttl(key).await?.is_some() { "string" } else { "none" };
    Ok(Reply::Simple(kind.into()))
}

/// TTL and PTTL: -2 if the key does not exist, -1 if it has no expiry.
pub async fn ttl(db: Db<'_>, key: &[u8], millis: bool) -> Res<Reply> {
    Ok(Reply::Integer(match db.ttl(key).await? {
        None => -2,
        Some(Ttl::Persistent) => -1,
        Some(Ttl::Remaining(s)) => {
            let s = i64::try_from(s).unwrap_or(i64::MAX);
            if millis { s.saturating_mul(1000) } else { s }
        }
    }))
}

/// EXPIRE and PEXPIRE [NX|XX|GT|LT]: 1 if the expiry was set (or, for a time already past, the
/// key deleted), 0 if the key does not exist or a condition failed.
pub async fn expire(db: Db<'_>, key: &[u8], req: ExpireRequest) -> Res<Reply> {
    if !req.flags.any() && req.secs <= 0 {
        let c = db.check_and_delete(key, check(CheckType::Exist), false).await?;
        return Ok(Reply::Integer(i64::from(c.passed)));
    }
    db.update(key, req.flags.any(), |cur| {
        let Some(value) = cur.value else { return Ok((Change::Keep, Reply::Integer(0))) };
        if !req.flags.allow(cur.ttl, req.secs) {
            return Ok((Change::Keep, Reply::Integer(0)));
        }
        let change = match req.secs {
            ..=0 => Change::Delete,
            s => Change::Put { value: value.to_vec(), ttl_secs: ttl_secs(s) },
        };
        Ok((change, Reply::Integer(1)))
    })
    .await
}

/// PERSIST: 1 if an expiry was removed.
pub async fn persist(db: Db<'_>, key: &[u8]) -> Res<Reply> {
    db.update(key, true, |cur| match (cur.value, cur.ttl) {
        (Some(value), Some(_)) => Ok((Change::Put { value: value.to_vec(), ttl_secs: 0 }, Reply::Integer(1))),
        _ => Ok((Change::Keep, Reply::Integer(0))),
    })
    .await
}
