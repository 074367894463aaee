//! The Redis side of a worker: one connection that comes back after Redis goes away, and
//! the stream commands a worker needs (consumer group, read, reclaim, heartbeat, deliveries,
//! results, dead letters), each completion atomic in one script.

use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{Client, Connection, RedisError, Value};
use std::time::{Duration, Instant};

/// Longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How long a blocking read waits for a job before the worker looks at its stop flag.
pub(crate) const BLOCK: Duration = Duration::from_millis(1000);

/// The Redis keys of one jobs stream.
#[derive(Debug, Clone)]
pub struct Names {
    pub stream: String,
    pub group: String,
    pub consumer: String,
    pub results: String,
    pub dead: String,
    /// Hash: key → result JSON (the idempotency store).
    pub by_key: String,
    /// Hash: job entry ID → `1` once its result (or dead letter) is written.
    pub done: String,
    /// Hash: job entry ID → the last error that left it unacknowledged.
    pub errors: String,
}

impl Names {
    /// The default names derived from the jobs stream's.
    pub fn new(stream: &str, group: &str, consumer: &str) -> Names {
        Names {
            stream: stream.to_string(),
            group: group.to_string(),
            consumer: consumer.to_string(),
            results: format!("{stream}.results"),
            dead: format!("{stream}.dead"),
            by_key: format!("{stream}.by-key"),
            done: format!("{stream}.done"),
            errors: format!("{stream}.errors"),
        }
    }
}

/// A Redis command failed for a reason reconnecting does not fix.
#[derive(Debug, thiserror::Error)]
#[error("Redis refused `{command}`")]
pub struct StreamError {
    command: &'static str,
    #[source]
    source: RedisError,
}

/// Redis could not be reached before the caller gave up waiting.
#[derive(Debug, thiserror::Error)]
#[error("Redis could not be reached for `{command}`")]
pub struct GaveUp {
    pub command: &'static str,
    #[source]
    pub source: Option<RedisError>,
}

/// Either failure of a command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Refused(#[from] StreamError),
    #[error(transparent)]
    Unreachable(#[from] GaveUp),
}

/// One connection, re-established with backoff whenever it breaks.
pub struct Redis {
    client: Client,
    connection: Option<Connection>,
    /// Failed attempts to connect and connections lost, so far.
    pub failures: u64,
    /// The last of those.
    pub last_failure: Option<String>,
}

/// Errors that a new connection (or waiting for the server to load its data) fixes.
fn transient(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || matches!(error.code(), Some("LOADING" | "TRYAGAIN" | "MASTERDOWN"))
}

impl Redis {
    /// A client for `url` (`redis://host:port/db`); nothing is connected yet.
    pub fn open(url: &str) -> Result<Redis, RedisError> {
        Ok(Redis {
            client: Client::open(url)?,
            connection: None,
            failures: 0,
            last_failure: None,
        })
    }

    fn failed(&mut self, error: RedisError) -> Option<RedisError> {
        self.failures += 1;
        self.last_failure = Some(error.to_string());
        self.connection = None;
        Some(error)
    }

    /// Runs `op`, reconnecting with backoff while Redis is unreachable, until
    /// `give_up()` says to stop waiting.
    pub fn run<T>(
        &mut self,
        command: &'static str,
        give_up: &dyn Fn() -> bool,
        mut op: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, CommandError> {
        let mut backoff = FIRST_BACKOFF;
        let mut last = None;
        loop {
            if self.connection.is_none() {
                match self
                    .client
                    .get_connection_with_timeout(Duration::from_secs(5))
                {
                    Ok(connection) => {
                        // A blocking read waits BLOCK; anything much longer is a dead server.
                        let _ = connection.set_read_timeout(Some(BLOCK + Duration::from_secs(9)));
                        let _ = connection.set_write_timeout(Some(Duration::from_secs(10)));
                        self.connection = Some(connection);
                    }
                    Err(error) => last = self.failed(error),
                }
            }
            if let Some(connection) = self.connection.as_mut() {
                match op(connection) {
                    Ok(value) => return Ok(value),
                    Err(error) if transient(&error) => last = self.failed(error),
                    Err(source) => return Err(StreamError { command, source }.into()),
                }
            }
            if give_up() {
                return Err(GaveUp {
                    command,
                    source: last,
                }
                .into());
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Creates the consumer group (and the stream) unless it exists.
pub fn ensure_group(con: &mut Connection, names: &Names) -> redis::RedisResult<()> {
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&names.stream)
        .arg(&names.group)
        .arg("0")
        .arg("MKSTREAM")
        .query(con);
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other.map(drop),
    }
}

/// Waits up to [`BLOCK`] for one new job.
pub fn read_new(con: &mut Connection, names: &Names) -> redis::RedisResult<Option<StreamId>> {
    let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&names.group)
        .arg(&names.consumer)
        .arg("COUNT")
        .arg(1)
        .arg("BLOCK")
        .arg(BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(&names.stream)
        .arg(">")
        .query(con);
    let reply = match reply {
        Err(e) if e.code() == Some("NOGROUP") => {
            // The stream or group is gone (a Redis restarted without its data): make it again.
            ensure_group(con, names)?;
            return Ok(None);
        }
        other => other?,
    };
    Ok(reply.and_then(|r| r.keys.into_iter().next()?.ids.into_iter().next()))
}

/// Takes over one job left unacknowledged by any consumer for longer than `idle`.
/// `cursor` is where the scan goes on next time.
pub fn claim_idle(
    con: &mut Connection,
    names: &Names,
    idle: Duration,
    cursor: &mut String,
) -> redis::RedisResult<Option<StreamId>> {
    let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(&names.stream)
        .arg(&names.group)
        .arg(&names.consumer)
        .arg(idle.as_millis() as u64)
        .arg(cursor.as_str())
        .arg("COUNT")
        .arg(1)
        .query(con)?;
    *cursor = reply.next_stream_id;
    Ok(reply.claimed.into_iter().next())
}

/// How many times the job was delivered, and to whom it belongs now (`None`: no longer
/// pending, acknowledged by someone).
pub fn pending(
    con: &mut Connection,
    names: &Names,
    entry: &str,
) -> redis::RedisResult<Option<(String, u64)>> {
    let reply: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&names.stream)
        .arg(&names.group)
        .arg(entry)
        .arg(entry)
        .arg(1)
        .query(con)?;
    Ok(reply
        .ids
        .into_iter()
        .find(|p| p.id == entry)
        .map(|p| (p.consumer, p.times_delivered as u64)))
}

/// Tells the group this consumer is still on the job (resets its idle time, not its
/// delivery count) — only while the job is still this consumer's.
pub fn heartbeat(con: &mut Connection, names: &Names, entry: &str) -> redis::RedisResult<bool> {
    match pending(con, names, entry)? {
        Some((owner, _)) if owner == names.consumer => {}
        _ => return Ok(false),
    }
    let _: Value = redis::cmd("XCLAIM")
        .arg(&names.stream)
        .arg(&names.group)
        .arg(&names.consumer)
        .arg(0)
        .arg(entry)
        .arg("JUSTID")
        .query(con)?;
    Ok(true)
}

/// Removes this consumer from the group unless jobs are pending for it.
pub fn leave_if_idle(con: &mut Connection, names: &Names) -> redis::RedisResult<()> {
    let mine: StreamPendingCountReply = redis::cmd("XPENDING")
        .arg(&names.stream)
        .arg(&names.group)
        .arg("-")
        .arg("+")
        .arg(1)
        .arg(&names.consumer)
        .query(con)?;
    if mine.ids.is_empty() {
        let _: Value = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&names.stream)
            .arg(&names.group)
            .arg(&names.consumer)
            .query(con)?;
    }
    Ok(())
}

/// The result stored under an idempotency key.
pub fn stored_result(
    con: &mut Connection,
    names: &Names,
    key: &str,
) -> redis::RedisResult<Option<String>> {
    redis::cmd("HGET").arg(&names.by_key).arg(key).query(con)
}

/// Writes the job's result once (whoever completes an entry first) and acknowledges it,
/// atomically; stores it under its key when `reusable`. Returns whether this call wrote it.
const COMPLETE: &str = r"
if ARGV[5] == '1' then redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) end
local written = 0
if redis.call('HSETNX', KEYS[2], ARGV[2], 'result') == 1 then
  redis.call('XADD', KEYS[3], '*', 'job', ARGV[6], 'entry', ARGV[2], 'result', ARGV[3])
  written = 1
end
redis.call('XACK', KEYS[4], ARGV[4], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
return written
";

/// See [`COMPLETE`].
pub struct Completion<'a> {
    pub entry: &'a str,
    pub job_id: &'a str,
    pub key: &'a str,
    pub result: &'a str,
    pub reusable: bool,
}

pub fn complete(con: &mut Connection, names: &Names, c: &Completion) -> redis::RedisResult<bool> {
    let written: i64 = redis::cmd("EVAL")
        .arg(COMPLETE)
        .arg(5)
        .arg(&names.by_key)
        .arg(&names.done)
        .arg(&names.results)
        .arg(&names.stream)
        .arg(&names.errors)
        .arg(c.key)
        .arg(c.entry)
        .arg(c.result)
        .arg(&names.group)
        .arg(if c.reusable { "1" } else { "0" })
        .arg(c.job_id)
        .query(con)?;
    Ok(written == 1)
}

/// Moves a job to the dead-letter stream with the reason (once) and acknowledges it.
const DEAD_LETTER: &str = r"
local written = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], 'dead') == 1 then
  local last = redis.call('HGET', KEYS[4], ARGV[1])
  if last then ARGV[3] = ARGV[3] .. '; last error: ' .. last end
  redis.call('XADD', KEYS[2], '*', 'entry', ARGV[1], 'reason', ARGV[3], 'job', ARGV[4], 'deliveries', ARGV[5])
  written = 1
end
redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return written
";

pub fn dead_letter(
    con: &mut Connection,
    names: &Names,
    entry: &str,
    reason: &str,
    job: &str,
    deliveries: u64,
) -> redis::RedisResult<bool> {
    let written: i64 = redis::cmd("EVAL")
        .arg(DEAD_LETTER)
        .arg(4)
        .arg(&names.done)
        .arg(&names.dead)
        .arg(&names.stream)
        .arg(&names.errors)
        .arg(entry)
        .arg(&names.group)
        .arg(reason)
        .arg(job)
        .arg(deliveries)
        .query(con)?;
    Ok(written == 1)
}

/// Remembers why a job was left unacknowledged (it is named in its dead letter).
pub fn record_error(
    con: &mut Connection,
    names: &Names,
    entry: &str,
    error: &str,
) -> redis::RedisResult<()> {
    redis::cmd("HSET")
        .arg(&names.errors)
        .arg(entry)
        .arg(error)
        .query(con)
}

/// Adds a job; returns its entry ID.
pub fn enqueue(con: &mut Connection, stream: &str, job: &str) -> redis::RedisResult<String> {
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("job")
        .arg(job)
        .query(con)
}

/// The `job` field of an entry, as text.
pub fn job_text(entry: &StreamId) -> Option<String> {
    match entry.map.get("job")? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

/// A deadline as a `give_up` test.
pub fn until(deadline: Instant) -> impl Fn() -> bool {
    move || Instant::now() >= deadline
}
