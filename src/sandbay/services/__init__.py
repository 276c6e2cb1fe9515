"""Use cases, one package per capability: `events` (recording, the bus, pages and
streams), `environments` (records, lifecycle requests, the one door `transition`,
activity, warm pools), `inside` (exec, processes, files, logs, metrics), `access`
(SSH credentials, previews, network policy), `work` (work items and the worker
protocol), `agents` (model providers, runs, OpenClaw instances) and `tenancy`
(organizations, keys, authentication, quotas). Each package's `service.py` is the
object `Platform` builds with its configuration bound; routes reach it through
`api/deps.py`. Capabilities meet only through `environments`, `events` and
`tenancy` (an import-linter contract).

Services write no SQL and import nothing of SQLAlchemy (a contract): statements are
in `db/queries/<resource>.py`, losing a compare-and-set or a unique index is handled
in `db/cas.py`, and sessions are named by `db/session`'s re-exports. Services keep
the unit of work (`session.get`, `add`, `flush`). What they hand to routes and
dialects is a domain shape (`Environment`, `WorkItem`, `AgentRun`), never a row.

Transactions come in three styles, and the signature says which:
- A use case that takes `session: AsyncSession` only flushes; the caller commits
  (the request's session dependency, before the answer is sent; a loop's sweep).
- A use case that must not hold a connection across engine I/O or a long wait is a
  method or function that takes the capability's `sessions` (an
  `async_sessionmaker`) and opens short transactions of its own, committing each:
  exec, files and PTYs (`inside/target.open_target`), waits and event streams
  (`Lifecycle.wait_for_state`, `events/stream`), the work long poll
  (`work/protocol.poll`), SSH logins and preview authorisation (`access/ssh`,
  `access/preview`), agent runs and OpenClaw provisioning (`agents/runs`,
  `agents/gateway`, `agents/instances`), and authentication on a cache miss
  (`tenancy/service`).
- A read that changes nothing and answers from one query opens a session of its
  own and closes it without committing: the native GET of one environment and the
  listing (`EnvironmentsService.read`, `page`), the API's hottest path, which then
  needs no request-long session and no commit round trip.

Engine calls inside a request are deliberate exceptions, each because the answer
must say what the engine did: a network-policy update answers once the policy is in
force (`access/network.update_environment`); a create checks the runner can hold
the size and image it asks for (`environments/records._check_fits`, a 400 at once
rather than an `error` later); Chowder's start and stop answer once the instance is
running or stopped, as its brief documents (`agents/instances`). Everything else
records intent and leaves engine work to the reconciler."""
