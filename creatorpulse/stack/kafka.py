"""Kafka: the configured brokers, or a private Apache Kafka 4 broker in KRaft mode.

The private broker runs from a classpath that Maven builds from ``maven/kafka-broker/pom.xml``:
nothing ships Kafka as a Debian or Python package. It is one node acting as broker and controller,
formatted once under ``<state>/kafka/data``. Either way, ``up`` ends by creating the topics of
:mod:`creatorpulse.topics` with their partition counts.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from creatorpulse.stack.part import Health, Part
from creatorpulse.stack.process import (
    ManagedProcess,
    StackError,
    port_open,
    require_free_port,
    wait_until,
)
from creatorpulse.stack.tools import MAVEN_DIR, fetch_jars, java_binary
from creatorpulse.topics import TOPICS, Topic

# The broker logs to standard output, which stack up appends to <state>/logs/kafka.log.
_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
logger.state.name = state.change.logger
logger.state.level = warn
"""


class Kafka(Part):
    name = "kafka"

    @property
    def managed(self) -> bool:
        return self.settings.manages_kafka

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def _root(self) -> Path:
        return self.settings.state_dir / "kafka"

    def processes(self) -> list[ManagedProcess]:
        if not self.managed:
            return []
        marker = str(self._root / "server.properties")
        return [ManagedProcess("kafka", self.settings.state_dir, marker=marker)]

    def admin(self) -> AdminClient:
        # librdkafka's own log stays quiet (log_level 0): a broker that is down or still starting
        # is reported once by the health check, not as a connection error every 50 ms.
        return AdminClient({"bootstrap.servers": self.address, "socket.timeout.ms": 5000,
                            "log_level": 0})

    def up(self) -> None:
        if self.managed:
            self._start_broker()
        else:
            self.say(f"kafka: using {self.address}")
            self._wait_ready(None)
        self.ensure_topics(list(TOPICS.values()))

    def _start_broker(self) -> None:
        (proc,) = self.processes()
        if proc.running():
            self.say(f"kafka: already running on {self.address}")
            return
        s = self.settings
        require_free_port(self.name, s.kafka_port, "CREATORPULSE_KAFKA_PORT")
        require_free_port(self.name, s.kafka_controller_port, "CREATORPULSE_KAFKA_CONTROLLER_PORT")
        java = java_binary()
        classpath = f"{self.install()[0].parent}/*"
        config = self._write_config()
        if not (self._root / "data" / "meta.properties").exists():
            self.say("kafka: formatting KRaft storage")
            fmt = subprocess.run(
                [java, "-cp", classpath, *self._log_opts(), "kafka.tools.StorageTool", "format",
                 "--standalone", f"--cluster-id={_cluster_id()}", "-c", str(config)],
                capture_output=True,
                text=True,
                timeout=s.start_timeout.total_seconds(),
                check=False,
            )
            if fmt.returncode != 0:
                detail = (fmt.stdout + fmt.stderr)[-3000:]
                raise StackError(self.name, "formatting the KRaft storage failed", detail)
        self.say(f"kafka: starting the broker on {self.address}")
        proc.spawn(
            [java, f"-Xms{s.kafka_heap}", f"-Xmx{s.kafka_heap}", "-XX:+UseG1GC",
             *self._log_opts(), "-cp", classpath, "kafka.Kafka", str(config)]
        )
        self._wait_ready(proc)

    def install(self) -> list[Path]:
        """Fetch the broker's classpath with Maven (a no-op once done for this pom)."""
        if not self.managed:
            return []
        self.say("kafka: broker jars (Maven fetches them on the first run)")
        pom = MAVEN_DIR / "kafka-broker" / "pom.xml"
        return fetch_jars(pom, self.settings.state_dir / "jars" / "kafka", self.name)

    def _log_opts(self) -> list[str]:
        log4j = self._root / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        return [f"-Dlog4j2.configurationFile={log4j}"]

    def _write_config(self) -> Path:
        s = self.settings
        data = self._root / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},"
            f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        config = self._root / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return config

    def _wait_ready(self, proc: ManagedProcess | None) -> None:
        host, port = self.address.split(",")[0].rsplit(":", 1)
        # The admin client is made only once the port answers: before that it logs every refusal.
        wait_until(
            lambda: True if port_open(host, int(port)) else None,
            part=self.name,
            what=f"{host}:{port} accepts connections",
            timeout=self.settings.start_timeout.total_seconds(),
            process=proc,
        )
        admin = self.admin()

        def ready() -> bool | None:
            try:
                metadata = admin.list_topics(timeout=2)
            except KafkaException:
                return None
            return True if metadata.brokers else None

        wait_until(
            ready,
            part=self.name,
            what=f"a broker answers on {self.address}",
            timeout=self.settings.start_timeout.total_seconds(),
            process=proc,
        )

    def ensure_topics(self, topics: list[Topic]) -> None:
        """Create missing topics; add partitions where a topic has fewer than defined."""
        admin = self.admin()
        existing = admin.list_topics(timeout=10).topics
        new = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1,
                     config=dict(t.config))
            for t in topics
            if t.name not in existing
        ]
        grow = [
            NewPartitions(t.name, t.partitions)
            for t in topics
            if t.name in existing and len(existing[t.name].partitions) < t.partitions
        ]
        futures = {**(admin.create_topics(new) if new else {}),
                   **(admin.create_partitions(grow) if grow else {})}
        for name, future in futures.items():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise StackError(self.name, f"could not create topic {name}: {exc}") from None
        for t in topics:
            self.say(f"kafka: topic {t.name}, {t.partitions} partition(s)")

    def health(self) -> Health:
        try:
            metadata = self.admin().list_topics(timeout=3)
        except KafkaException:
            return Health(False, "not reachable")
        missing = [t.name for t in TOPICS.values() if t.name not in metadata.topics]
        if missing:
            return Health(False, f"{len(metadata.brokers)} broker(s); missing topics {missing}")
        return Health(True, f"{len(metadata.brokers)} broker(s), {len(TOPICS)} topics")


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    An id that starts with ``-`` would be read by ``kafka-storage format`` as an option (it fails
    with "expected one argument"), so such ids are drawn again, as Kafka's own ``Uuid`` does.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
