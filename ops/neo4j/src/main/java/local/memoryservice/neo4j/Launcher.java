package local.memoryservice.neo4j;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeFormatter;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.BoltConnectorInternalSettings;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * Runs the real Neo4j Community engine, embedded, for local tests and CI.
 *
 * <p>Bolt listens on 127.0.0.1 only, auth is on, and the {@code neo4j} user's password comes from
 * {@code NEO4J_PASSWORD}. The data directory persists across restarts. The launcher writes a pid file
 * at once (so a stop works even during start-up) and a ready file holding the Bolt URI only once the
 * password is set and Bolt accepts connections, so a caller never races the first-start password.
 * SIGTERM runs a shutdown hook that stops the DBMS cleanly (checkpoint, store unlock).
 *
 * <p>Options (flag, else environment variable, else default):
 * <pre>
 *   --data DIR         NEO4J_DATA        ./run/data   Neo4j home: data/, logs/debug.log
 *   --port N           NEO4J_PORT        7687         Bolt port on 127.0.0.1
 *   --pagecache SIZE   NEO4J_PAGECACHE   128m         page cache (k, m, g suffixes)
 *   --pid-file FILE                      DIR/neo4j.pid
 *   --ready-file FILE                    DIR/neo4j.ready
 *   --log-file FILE                      (stdout)     launcher and Neo4j user log, appended
 *   --config FILE                        (none)       extra neo4j.conf-style settings
 *   password: NEO4J_PASSWORD, default memory-test-password (never a flag: flags show in ps)
 * </pre>
 */
public final class Launcher {
    static final String USER = "neo4j";
    static final String DEFAULT_PASSWORD = "memory-test-password";
    static final String HOST = "127.0.0.1";

    /** Guards start-up against a concurrent shutdown hook: SIGTERM mid-start waits, then stops cleanly. */
    private static final Object LIFECYCLE = new Object();

    private static DatabaseManagementService dbms;
    private static boolean stopping;

    private Launcher() {}

    record Options(
            Path home,
            int port,
            long pageCacheBytes,
            Path pidFile,
            Path readyFile,
            Optional<Path> logFile,
            Optional<Path> configFile,
            String password) {

        String boltUri() {
            return "bolt://" + HOST + ":" + port;
        }
    }

    public static void main(String[] args) {
        Options options;
        try {
            options = parse(args, System.getenv());
        } catch (IllegalArgumentException e) {
            System.err.println("neo4j-launcher: " + e.getMessage());
            System.exit(2);
            return;
        }
        try {
            run(options);
        } catch (Throwable t) {
            log("start failed: " + t);
            t.printStackTrace();
            System.exit(1);
        }
    }

    private static void run(Options o) throws IOException, InterruptedException {
        if (o.logFile().isPresent()) {
            Path file = o.logFile().get().toAbsolutePath();
            Files.createDirectories(file.getParent());
            PrintStream out = new PrintStream(new FileOutputStream(file.toFile(), true), true, StandardCharsets.UTF_8);
            System.setOut(out);
            System.setErr(out);
        }
        Files.createDirectories(o.home());
        long pid = ProcessHandle.current().pid();
        claimPidFile(o.pidFile(), pid);
        Files.deleteIfExists(o.readyFile());
        log("starting Neo4j " + neo4jVersion() + " (pid " + pid + ", home " + o.home() + ", bolt " + o.boltUri()
                + ", page cache " + o.pageCacheBytes() / (1024 * 1024) + " MiB, max heap "
                + Runtime.getRuntime().maxMemory() / (1024 * 1024) + " MiB)");

        Runtime.getRuntime().addShutdownHook(new Thread(() -> shutdown(o), "neo4j-launcher-shutdown"));
        Instant started = Instant.now();

        synchronized (LIFECYCLE) {
            if (stopping) {
                return;
            }
            DatabaseManagementServiceBuilder builder = new DatabaseManagementServiceBuilder(o.home());
            if (o.configFile().isPresent()) {
                builder.loadPropertiesFromFile(o.configFile().get());
            }
            dbms = builder.setConfig(settings(o)).setUserLogProvider(new Log4jLogProvider(System.out)).build();
            ensurePassword(dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME), o.password());
            awaitBolt(o.port(), Duration.ofSeconds(30));
            writeAtomically(o.readyFile(), o.boltUri() + "\n");
            log("ready at " + o.boltUri() + " as user " + USER + " after "
                    + Duration.between(started, Instant.now()).toMillis() + " ms");
        }
        new CountDownLatch(1).await(); // Park; the shutdown hook ends the process.
    }

    static Map<org.neo4j.graphdb.config.Setting<?>, Object> settings(Options o) {
        Map<org.neo4j.graphdb.config.Setting<?>, Object> s = new HashMap<>();
        s.put(BoltConnector.enabled, true);
        s.put(BoltConnector.listen_address, new SocketAddress(HOST, o.port()));
        s.put(BoltConnector.advertised_address, new SocketAddress(HOST, o.port()));
        s.put(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED);
        // Bolt's stop waits 5 s twice by default for connections and workers; 1 s is plenty for tests.
        s.put(BoltConnectorInternalSettings.connection_shutdown_wait_time, Duration.ofSeconds(1));
        s.put(BoltConnectorInternalSettings.thread_pool_shutdown_wait_time, Duration.ofSeconds(1));
        s.put(GraphDatabaseSettings.auth_enabled, true);
        s.put(GraphDatabaseSettings.pagecache_memory, o.pageCacheBytes());
        // A test database: small, non-preallocated transaction logs, pruned quickly.
        s.put(GraphDatabaseSettings.preallocate_logical_logs, false);
        s.put(GraphDatabaseSettings.logical_log_rotation_threshold, 16L * 1024 * 1024);
        s.put(GraphDatabaseSettings.keep_logical_logs, "2 files");
        // No network but loopback here: never try to phone home.
        s.put(GraphDatabaseSettings.udc_enabled, false);
        return s;
    }

    /**
     * Makes the {@code neo4j} user's password the one given. On a first start the user still has the
     * default password with "change required"; later starts re-apply it, so changing NEO4J_PASSWORD
     * and restarting takes effect. Runs on the system database through the embedded API, which is
     * trusted, before the ready file tells anyone to connect.
     */
    static void ensurePassword(GraphDatabaseService system, String password) {
        Map<String, Object> params = Map.of("user", USER, "password", password);
        Boolean changeRequired = system.executeTransactionally(
                "SHOW USERS YIELD user, passwordChangeRequired WHERE user = $user RETURN passwordChangeRequired",
                params,
                result -> result.hasNext() ? (Boolean) result.next().get("passwordChangeRequired") : null);
        if (changeRequired == null) {
            system.executeTransactionally(
                    "CREATE USER " + USER + " SET PASSWORD $password CHANGE NOT REQUIRED", params);
            log("created user " + USER);
            return;
        }
        try {
            system.executeTransactionally(
                    "ALTER USER " + USER + " SET PASSWORD $password CHANGE NOT REQUIRED", params);
            log(changeRequired ? "set the initial password of " + USER : "changed the password of " + USER);
        } catch (RuntimeException e) {
            if (!samePassword(e)) {
                throw e;
            }
            log("password of " + USER + " unchanged");
        }
    }

    private static boolean samePassword(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = String.valueOf(t.getMessage()).toLowerCase(Locale.ROOT);
            if (m.contains("old password and new password cannot be the same")) {
                return true;
            }
        }
        return false;
    }

    private static void awaitBolt(int port, Duration timeout) throws InterruptedException, IOException {
        Instant deadline = Instant.now().plus(timeout);
        while (true) {
            try (Socket socket = new Socket()) {
                socket.connect(new InetSocketAddress(HOST, port), 1000);
                return;
            } catch (IOException e) {
                if (Instant.now().isAfter(deadline)) {
                    throw new IOException("Bolt did not accept connections on " + HOST + ":" + port, e);
                }
                Thread.sleep(200);
            }
        }
    }

    private static void shutdown(Options o) {
        synchronized (LIFECYCLE) {
            stopping = true;
            Instant started = Instant.now();
            try {
                Files.deleteIfExists(o.readyFile());
            } catch (IOException e) {
                log("could not delete " + o.readyFile() + ": " + e);
            }
            if (dbms != null) {
                log("stopping Neo4j");
                try {
                    dbms.shutdown();
                } catch (RuntimeException e) {
                    log("shutdown error: " + e);
                }
                log("stopped cleanly in " + Duration.between(started, Instant.now()).toMillis() + " ms");
            }
            try {
                String mine = String.valueOf(ProcessHandle.current().pid());
                if (Files.exists(o.pidFile()) && Files.readString(o.pidFile()).strip().equals(mine)) {
                    Files.delete(o.pidFile());
                }
            } catch (IOException e) {
                log("could not delete " + o.pidFile() + ": " + e);
            }
            System.out.flush();
        }
    }

    /** Refuses to start over a live launcher's pid file; replaces a stale one. */
    private static void claimPidFile(Path pidFile, long pid) throws IOException {
        if (Files.exists(pidFile)) {
            String text = Files.readString(pidFile).strip();
            try {
                long other = Long.parseLong(text);
                if (other != pid && ProcessHandle.of(other).map(ProcessHandle::isAlive).orElse(false)) {
                    throw new IllegalStateException(
                            "another launcher (pid " + other + ") holds " + pidFile + "; stop it first");
                }
            } catch (NumberFormatException e) {
                // Garbage in a pid file: treat as stale.
            }
            log("replacing stale pid file " + pidFile);
        }
        writeAtomically(pidFile, pid + "\n");
    }

    private static void writeAtomically(Path file, String text) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        Files.writeString(tmp, text);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    static Options parse(String[] args, Map<String, String> env) {
        Map<String, String> flags = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help")) {
                throw new IllegalArgumentException("usage: java -jar neo4j-launcher.jar [--data DIR] [--port N]"
                        + " [--pagecache SIZE] [--pid-file F] [--ready-file F] [--log-file F] [--config F];"
                        + " password from NEO4J_PASSWORD");
            }
            if (!a.startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("bad argument: " + a + " (try --help)");
            }
            flags.put(a.substring(2), args[++i]);
        }
        for (String key : flags.keySet()) {
            if (!java.util.Set.of("data", "port", "pagecache", "pid-file", "ready-file", "log-file", "config")
                    .contains(key)) {
                throw new IllegalArgumentException("unknown option --" + key + " (try --help)");
            }
        }
        Path home = Path.of(pick(flags.get("data"), env.get("NEO4J_DATA"), "run/data")).toAbsolutePath().normalize();
        int port;
        try {
            port = Integer.parseInt(pick(flags.get("port"), env.get("NEO4J_PORT"), "7687"));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("port must be a number");
        }
        if (port < 1 || port > 65535) {
            throw new IllegalArgumentException("port out of range: " + port);
        }
        long pageCache = parseBytes(pick(flags.get("pagecache"), env.get("NEO4J_PAGECACHE"), "128m"));
        String password = pick(null, env.get("NEO4J_PASSWORD"), DEFAULT_PASSWORD);
        if (password.length() < 8) {
            throw new IllegalArgumentException("NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)");
        }
        Path pid = Path.of(pick(flags.get("pid-file"), null, home.resolve("neo4j.pid").toString()));
        Path ready = Path.of(pick(flags.get("ready-file"), null, home.resolve("neo4j.ready").toString()));
        return new Options(
                home,
                port,
                pageCache,
                pid.toAbsolutePath(),
                ready.toAbsolutePath(),
                Optional.ofNullable(flags.get("log-file")).map(Path::of),
                Optional.ofNullable(flags.get("config")).map(Path::of),
                password);
    }

    private static String pick(String flag, String env, String fallback) {
        if (flag != null && !flag.isBlank()) {
            return flag;
        }
        if (env != null && !env.isBlank()) {
            return env;
        }
        return fallback;
    }

    static long parseBytes(String text) {
        String t = text.strip().toLowerCase(Locale.ROOT);
        long unit = 1;
        char last = t.isEmpty() ? ' ' : t.charAt(t.length() - 1);
        if (last == 'k' || last == 'm' || last == 'g') {
            unit = last == 'k' ? 1024L : last == 'm' ? 1024L * 1024 : 1024L * 1024 * 1024;
            t = t.substring(0, t.length() - 1);
        }
        try {
            return Long.parseLong(t) * unit;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad size: " + text + " (e.g. 128m)");
        }
    }

    private static String neo4jVersion() {
        String v = DatabaseManagementService.class.getPackage().getImplementationVersion();
        return v == null ? "5.26" : v;
    }

    static void log(String message) {
        System.out.println(DateTimeFormatter.ISO_INSTANT.format(Instant.now()) + " [launcher] " + message);
    }
}
