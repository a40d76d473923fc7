"""Timers, cron schedules and lock windows, on APScheduler 3 with a SQLite job store.

Every cut job has ``misfire_grace_time=None``: a job whose time passed while the
daemon was down runs at start-up, however late (DESIGN invariant 4; APScheduler's
default of 1 s would silently drop it). Jobs call a module-level function with plain
arguments, so the job store can persist them; that function finds the running
service in a registry.

Wall-clock jumps (NTP stepping a clock that was wrong, a person setting it): APScheduler
keeps due times on the wall clock but sleeps on the monotonic one, so after a step back
of an hour a "shut off in 10 minutes" timer would fire 70 minutes later, and after a
step forward an "at 18:30" that is now past would wait for the sleep already under way.
A watchdog compares the two clocks every second. On a jump it moves every countdown
timer by the jump (a countdown means elapsed time) and wakes the scheduler, so
clock-time timers (``at``, cron, lock windows) are judged against the new wall clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_ALL_JOBS_REMOVED,
    EVENT_JOB_ADDED,
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_MODIFIED,
    EVENT_JOB_REMOVED,
)
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from stove_ctl.clock import Clock
from stove_ctl.config import LockWindowConfig, ScheduleConfig
from stove_ctl.core.burner import Burner
from stove_ctl.core.commands import MAX_DELAY_S, TIMERS_SHOWN, Command
from stove_ctl.core.controller import Controller
from stove_ctl.core.events import EventLog
from stove_ctl.core.jobstore import SqliteJobStore
from stove_ctl.core.timer_index import TimerIndex
from stove_ctl.errors import CommandError

log = logging.getLogger(__name__)

_SERVICES: dict[str, TimerService] = {}
CONFIG_PREFIX = "cfg-"
JUMP_CHECK_S = 1.0
JUMP_THRESHOLD_S = 2.0  # smaller steps are NTP slewing or scheduling noise
# The scheduler's job events that change what the index holds.
JOB_CHANGES = (
    EVENT_JOB_ADDED
    | EVENT_JOB_MODIFIED
    | EVENT_JOB_REMOVED
    | EVENT_ALL_JOBS_REMOVED
    | EVENT_JOB_EXECUTED
    | EVENT_JOB_ERROR
    | EVENT_JOB_MISSED
)


async def fire(
    service: str,
    timer_id: str,
    burners: list[str],
    action: str,
    due: float,
    countdown: bool = False,
) -> None:
    """The job function APScheduler persists a reference to."""
    running = _SERVICES.get(service)
    if running is None:
        log.error("timer %s fired with no timer service running", timer_id)
        return
    await running.fired(timer_id, burners, action, due)


class TimerService:
    def __init__(
        self,
        controller: Controller,
        events: EventLog,
        store: Path | None,
        timezone: ZoneInfo,
        clock: Clock,
        schedules: list[ScheduleConfig] | None = None,
        lock_windows: list[LockWindowConfig] | None = None,
        name: str = "main",
    ) -> None:
        self.controller = controller
        self.events = events
        self.tz = timezone
        self.clock = clock
        self.name = name
        self.schedules = schedules or []
        self.store_error: str | None = None
        self.lock_windows = lock_windows or []
        jobstore: Any = SqliteJobStore(store) if store is not None else MemoryJobStore()
        self._store = jobstore
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": jobstore},
            timezone=timezone,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        controller.handlers.update(
            timer=self._timer, cancel=self._cancel, extend=self._extend, timers=self._list
        )
        controller.burner_extras.append(self._burner_status)
        controller.health["timer_store"] = self._health
        self._watchdog: asyncio.Task[None] | None = None
        self.index = TimerIndex()
        self.scheduler.add_listener(self._job_changed, JOB_CHANGES)

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        _SERVICES[self.name] = self
        try:
            self.scheduler.start()
        except Exception as exc:  # noqa: BLE001 - a broken store must not stop the daemon
            # (invariant 8): keep timers in memory, and say so.
            log.error("timer store unusable (%s); timers are kept in memory only", exc)
            self.store_error = str(exc)
            self._store = MemoryJobStore()
            self.scheduler = AsyncIOScheduler(
                jobstores={"default": self._store},
                timezone=self.tz,
                job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
            )
            self.scheduler.add_listener(self._job_changed, JOB_CHANGES)
            self.scheduler.start()
        self.index.load(
            self._store.summaries()
            if isinstance(self._store, SqliteJobStore)
            else [
                (job.id, _timestamp(job.next_run_time), job.kwargs["burners"], job.kwargs["action"])
                for job in self.scheduler.get_jobs()
            ]
        )
        lost = self._lost()
        if lost is not None:
            self.events.emit(
                "alarm",
                self.clock.time(),
                source="startup",
                detail={"error": f"timers lost: {lost}. Set again any timer you still need"},
            )
        self._sync_config_jobs()
        self._watchdog = asyncio.get_running_loop().create_task(self._watch_wall_clock())

    def _lost(self) -> str | None:
        """Why the saved timers could not be read at start-up, if they could not."""
        if self.store_error is not None:
            return f"{self.store_error}; timers are kept in memory only"
        lost: str | None = getattr(self._store, "lost", None)
        return lost

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        _SERVICES.pop(self.name, None)

    def _sync_config_jobs(self) -> None:
        for job_id in list(self.index.jobs):
            if job_id.startswith(CONFIG_PREFIX):
                self.scheduler.remove_job(job_id)
        for schedule in self.schedules:
            keys = [b.spec.key for b in self.controller.resolve(schedule.burners)]
            self.scheduler.add_job(
                fire,
                CronTrigger.from_crontab(schedule.cron, timezone=self.tz),
                id=f"{CONFIG_PREFIX}schedule-{schedule.name}",
                name=f"schedule {schedule.name}",
                kwargs=self._kwargs(f"schedule:{schedule.name}", keys, schedule.action),
            )
        now = dt.datetime.now(self.tz)
        for window in self.lock_windows:
            keys = [b.spec.key for b in self.controller.resolve(window.burners)]
            owner = f"window:{window.name}"
            for edge, at, action in (
                ("start", window.start, "lock"),
                ("end", window.end, "release"),
            ):
                self.scheduler.add_job(
                    fire,
                    CronTrigger(hour=at.hour, minute=at.minute, timezone=self.tz),
                    id=f"{CONFIG_PREFIX}window-{window.name}-{edge}",
                    name=f"lock window {window.name} {edge}",
                    kwargs=self._kwargs(owner, keys, action),
                )
            if window.contains(now.time()):
                # The window is on now (the daemon started inside it): lock at once.
                self.scheduler.add_job(
                    fire,
                    DateTrigger(run_date=now, timezone=self.tz),
                    id=f"{CONFIG_PREFIX}window-{window.name}-now",
                    kwargs=self._kwargs(owner, keys, "lock"),
                )

    def _kwargs(
        self,
        timer_id: str,
        burners: list[str],
        action: str,
        due: float = 0.0,
        countdown: bool = False,
    ) -> dict[str, Any]:
        return {
            "service": self.name,
            "timer_id": timer_id,
            "burners": burners,
            "action": action,
            "due": due,
            "countdown": countdown,
        }

    # -- wall-clock jumps --------------------------------------------------------

    async def _watch_wall_clock(self) -> None:
        skew = self.clock.time() - self.clock.monotonic()
        while True:
            await self.clock.sleep(JUMP_CHECK_S)
            now_skew = self.clock.time() - self.clock.monotonic()
            jump, skew = now_skew - skew, now_skew
            if abs(jump) >= JUMP_THRESHOLD_S:
                try:
                    self.wall_clock_jumped(jump)
                except Exception:  # the watchdog must outlive a store error
                    log.exception("could not move the timers after a wall-clock jump")

    def wall_clock_jumped(self, jump_s: float) -> None:
        """Keep countdowns on elapsed time and re-judge clock-time timers."""
        moved = []
        shift = dt.timedelta(seconds=jump_s)
        for job in self.scheduler.get_jobs():
            if not job.kwargs.get("countdown") or job.next_run_time is None:
                continue
            due = job.next_run_time + shift
            job.modify(
                trigger=DateTrigger(run_date=due, timezone=self.tz),
                next_run_time=due,
                kwargs={**job.kwargs, "due": due.timestamp()},
            )
            moved.append(job.id)
        self.scheduler.wakeup()
        log.warning(
            "wall clock jumped %+.1f s; moved %d countdown timer(s) with it", jump_s, len(moved)
        )
        self.events.emit(
            "clock_jump",
            self.clock.time(),
            source="timer",
            detail={"jump_s": round(jump_s, 3), "countdowns_moved": moved},
        )

    # -- firing ------------------------------------------------------------------

    async def fired(self, timer_id: str, burners: list[str], action: str, due: float) -> None:
        now = self.clock.time()
        late_s = round(now - due, 3) if due else None
        self.events.emit(
            "timer_fired",
            now,
            burner=burners[0] if len(burners) == 1 else None,
            source="timer",
            command_id=timer_id,
            detail={"action": action, "burners": burners, "late_s": late_s},
        )
        for key in burners:
            try:
                if action == "release":
                    await self.controller.release_lock(key, owner=timer_id)
                    continue
                cmd = Command.model_validate(
                    {"action": action, "burner": key, "source": "timer", "id": timer_id[:64]}
                )
                await self.controller.execute(cmd, wait="accepted")
            except CommandError as exc:
                log.error("timer %s could not act on %s: %s", timer_id, key, exc.message)

    # -- commands ----------------------------------------------------------------

    def _due(self, cmd: Command) -> dt.datetime:
        now = dt.datetime.now(self.tz)
        if cmd.in_s is not None:
            return now + dt.timedelta(seconds=cmd.in_s)
        assert cmd.at is not None
        return parse_at(cmd.at, now)

    async def _timer(self, cmd: Command, targets: list[Burner]) -> dict[str, Any]:
        due = self._due(cmd)
        keys = [b.spec.key for b in targets]
        timer_id = f"t-{uuid.uuid4().hex[:8]}"
        self.scheduler.add_job(
            fire,
            DateTrigger(run_date=due, timezone=self.tz),
            id=timer_id,
            name=f"timer by {cmd.source}",
            kwargs=self._kwargs(
                timer_id, keys, "shutoff", due.timestamp(), countdown=cmd.in_s is not None
            ),
        )
        self.events.emit(
            "timer_set",
            self.clock.time(),
            burner=keys[0] if len(keys) == 1 else None,
            source=cmd.source,
            command_id=cmd.id,
            detail={"timer": timer_id, "burners": keys, "due": due.isoformat()},
        )
        return {"ok": True, "action": "timer", "timer": self._describe(timer_id)}

    def _user_jobs(self, targets: list[Burner]) -> list[Any]:
        ids = self.index.ids_for(b.spec.key for b in targets)
        jobs = [self.scheduler.get_job(i) for i in sorted(ids) if not i.startswith(CONFIG_PREFIX)]
        return [job for job in jobs if job is not None]

    def _named_jobs(self, cmd: Command, targets: list[Burner]) -> list[Any]:
        """The timer the command names, else every user timer of its burners."""
        if cmd.timer is not None:
            return [self._job(cmd.timer, targets)]
        return self._user_jobs(targets)

    def _job(self, timer_id: str, targets: list[Burner]) -> Any:
        """A user's timer by id, if every burner it cuts is one the command may reach
        (a stove's topics reach only that stove's timers)."""
        job = self.scheduler.get_job(timer_id)
        reachable = {b.spec.key for b in targets}
        if job is None or not set(job.kwargs["burners"]) <= reachable:
            raise CommandError("unknown_timer", f"no timer {timer_id!r} (see stove-ctl timers)")
        if job.id.startswith(CONFIG_PREFIX):
            raise CommandError(
                "not_allowed", f"{timer_id!r} comes from the config file; change it there"
            )
        return job

    async def _cancel(self, cmd: Command, targets: list[Burner]) -> dict[str, Any]:
        jobs = self._named_jobs(cmd, targets)
        if not jobs:
            raise CommandError("unknown_timer", "no timer set for that burner")
        cancelled: list[dict[str, Any]] = []
        for job in jobs:
            if len(cancelled) < TIMERS_SHOWN:  # the reply names the first; counts all
                cancelled.append(self._describe(job.id))
            job.remove()
            burners = job.kwargs["burners"]
            self.events.emit(
                "timer_cancelled",
                self.clock.time(),
                burner=burners[0] if len(burners) == 1 else None,
                source=cmd.source,
                command_id=cmd.id,
                detail={"timer": job.id, "burners": job.kwargs["burners"]},
            )
        return {"ok": True, "action": "cancel", "timers": cancelled, "total": len(jobs)}

    async def _extend(self, cmd: Command, targets: list[Burner]) -> dict[str, Any]:
        jobs = self._named_jobs(cmd, targets)
        if len(jobs) != 1:
            raise CommandError(
                "unknown_timer" if not jobs else "ambiguous_timer",
                "say which timer to extend (its id)" if jobs else "no timer set for that burner",
            )
        job = jobs[0]
        assert cmd.in_s is not None
        due = job.next_run_time + dt.timedelta(seconds=cmd.in_s)
        if (due - dt.datetime.now(self.tz)).total_seconds() > MAX_DELAY_S:
            raise CommandError("bad_command", "a timer cannot end more than 24 hours from now")
        job.reschedule(DateTrigger(run_date=due, timezone=self.tz))
        job.modify(kwargs={**job.kwargs, "due": due.timestamp()})
        self.events.emit(
            "timer_extended",
            self.clock.time(),
            source=cmd.source,
            command_id=cmd.id,
            detail={"timer": job.id, "burners": job.kwargs["burners"], "due": due.isoformat()},
        )
        return {"ok": True, "action": "extend", "timer": self._describe(job.id)}

    async def _list(self, cmd: Command, targets: list[Burner]) -> dict[str, Any]:
        """The earliest ``limit`` timers of the burners (from the index: no timer is
        read from the store but those shown), and how many there are in all."""
        ids = self.index.ids_for(b.spec.key for b in targets)
        pending = sorted(
            (entry.next_run, job_id)
            for job_id in ids
            if (entry := self.index.jobs[job_id]).next_run is not None
        )
        shown = [self._describe(job_id) for _, job_id in pending[: cmd.limit or TIMERS_SHOWN]]
        return {"ok": True, "action": "timers", "timers": shown, "total": len(pending)}

    def _describe(self, job_id: str) -> dict[str, Any]:
        job = self.scheduler.get_job(job_id)
        assert job is not None
        due = job.next_run_time
        return {
            "id": job.id,
            "name": job.name,
            "burners": job.kwargs["burners"],
            "action": job.kwargs["action"],
            "due": due.isoformat() if due else None,
            "in_s": round((due - dt.datetime.now(self.tz)).total_seconds(), 1) if due else None,
            "from_config": job.id.startswith(CONFIG_PREFIX),
        }

    def _health(self) -> str:
        problems = [self._lost(), getattr(self._store, "error", None)]
        return "; ".join(p for p in problems if p) or "ok"

    def _job_changed(self, event: Any) -> None:
        """Keep the index up to date from the scheduler's job events."""
        if event.code == EVENT_ALL_JOBS_REMOVED:
            self.index.clear()
        elif event.code == EVENT_JOB_REMOVED:
            self.index.drop(event.job_id)
        else:  # added, modified, or run (a schedule's next run has moved)
            job = self.scheduler.get_job(event.job_id)
            if job is None:
                self.index.drop(event.job_id)
            else:
                self.index.put(job.id, _timestamp(job.next_run_time), job.kwargs)

    def _burner_status(self, key: str) -> dict[str, Any]:
        due = self.index.next_cut(key)
        return {"next_cut": None if due is None else _iso(due, self.tz)}


def _timestamp(when: dt.datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


def _iso(timestamp: float, zone: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(timestamp, zone).isoformat()


def parse_at(text: str, now: dt.datetime) -> dt.datetime:
    """``18:30`` (the next one), ``18:30:15``, or an ISO date-time (in the future)."""
    tz = now.tzinfo
    value = text.strip()
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            clock_time = dt.datetime.strptime(value, fmt).time()
        except ValueError:
            continue
        due = now.replace(
            hour=clock_time.hour, minute=clock_time.minute, second=clock_time.second, microsecond=0
        )
        return due if due > now else due + dt.timedelta(days=1)
    try:
        due = dt.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError("bad_time", f"cannot read {text!r} as a time (say 18:30)") from None
    if due.tzinfo is None:
        due = due.replace(tzinfo=tz)
    if due <= now:
        raise CommandError("bad_time", f"{text} is in the past")
    if (due - now).total_seconds() > MAX_DELAY_S:
        raise CommandError("bad_time", f"{text} is more than 24 hours away")
    return due
