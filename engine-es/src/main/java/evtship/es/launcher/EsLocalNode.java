package evtship.es.launcher;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.stream.Stream;

import org.elasticsearch.Build;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;

/**
 * Runs one real Elasticsearch node (8.x or 9.x, whichever server is on the module path) in this
 * JVM, on loopback.
 *
 * <p>Usage: {@code EsLocalNode HOME HTTP_PORT TRANSPORT_PORT BUILD_DIR [CLUSTER_NAME [NODE_NAME]]}.
 * BUILD_DIR is this project's target-8 or target-9 folder: its {@code modules.classpath} lists
 * the jars of the modules (transport-netty4, x-pack-core) that the server does not already hold,
 * and its {@code *-root-module.jar} is evtship's module answering {@code GET /}. They are laid
 * out under {@code HOME/modules/<name>/} with a {@code plugin-descriptor.properties} written here,
 * as Elasticsearch's distribution has them. System property {@code evtship.es.xpack=false} leaves
 * x-pack-core out. The process stays up until it is killed; {@code scripts/elasticsearch-local}
 * manages it.
 */
public final class EsLocalNode {

    private EsLocalNode() {
    }

    /** One module folder: name, main class, and which jars of modules.classpath it holds. */
    private record Module(String name, String classname, String description, Predicate<String> takes) {
    }

    private static final List<Module> MODULES = List.of(
            new Module("transport-netty4", "org.elasticsearch.transport.netty4.Netty4Plugin",
                    "Netty 4 based HTTP and transport",
                    jar -> jar.startsWith("netty-") || jar.startsWith("transport-netty4-")
                            || jar.startsWith("elasticsearch-ssl-config-")),
            new Module("x-pack-core", "org.elasticsearch.xpack.core.XPackPlugin",
                    "Elasticsearch Expanded Pack Plugin - Core (license, basic features)",
                    jar -> !(jar.startsWith("netty-") || jar.startsWith("transport-netty4-"))));

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: EsLocalNode HOME HTTP_PORT TRANSPORT_PORT BUILD_DIR [CLUSTER_NAME [NODE_NAME]]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        String httpPort = args[1];
        String transportPort = args[2];
        Path buildDir = Paths.get(args[3]).toAbsolutePath();
        String clusterName = args.length > 4 && !args[4].isEmpty() ? args[4] : "evtship-local";
        String nodeName = args.length > 5 && !args[5].isEmpty() ? args[5] : "es-node-" + httpPort;
        boolean xpack = !"false".equals(System.getProperty("evtship.es.xpack", "true"));

        Path config = home.resolve("config");
        Files.createDirectories(config);
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.createDirectories(home.resolve("plugins"));
        Files.writeString(config.resolve("log4j2.properties"), String.join("\n",
                "status = error",
                "appender.console.type = Console",
                "appender.console.name = console",
                "appender.console.layout.type = PatternLayout",
                "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%c{1.}] %m%n",
                "rootLogger.level = info",
                "rootLogger.appenderRef.console.ref = console",
                ""));
        layOutModules(home.resolve("modules"), buildDir, xpack);

        Settings.Builder settings = Settings.builder()
                .put("path.home", home.toString())
                .put("path.data", home.resolve("data").toString())
                .put("path.logs", home.resolve("logs").toString())
                .put("cluster.name", clusterName)
                .put("node.name", nodeName)
                .put("network.host", "127.0.0.1")
                .put("http.port", httpPort)
                .put("transport.port", transportPort)
                .put("discovery.type", "single-node")
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .put("action.auto_create_index", true);
        if (xpack) {
            // x-pack-core registers the setting; security itself is not on Maven Central.
            settings.put("xpack.security.enabled", false);
        }

        // Elasticsearch's own order: the status listener and its logging plugins first, then the
        // environment, then the configuration read from HOME/config.
        LogConfigurator.registerErrorListener();
        LogConfigurator.configureESLogging();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings.build(), Collections.emptyMap(), config, () -> nodeName);
        LogConfigurator.configure(env, true);

        Node node = Nodes.create(env);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                System.err.println("error while stopping the node: " + e);
            }
        }, "evtship-es-shutdown"));
        node.start();
        System.out.println("evtship local elasticsearch " + Build.current().qualifiedVersion()
                + ": http://127.0.0.1:" + httpPort + " (cluster " + clusterName + ")");
        Thread.currentThread().join();
    }

    /** Rebuilds HOME/modules from the build folder, so that a rebuild never leaves stale jars. */
    static void layOutModules(Path modules, Path buildDir, boolean xpack) throws IOException {
        deleteTree(modules);
        Files.createDirectories(modules);
        String listing = Files.readString(buildDir.resolve("modules.classpath")).trim();
        List<Path> jars = new ArrayList<>();
        for (String entry : listing.split(File.pathSeparator)) {
            if (!entry.isEmpty()) {
                jars.add(Paths.get(entry));
            }
        }
        String esVersion = Build.current().version();
        for (Module module : MODULES) {
            if (!xpack && module.name().equals("x-pack-core")) {
                continue;
            }
            Path dir = modules.resolve(module.name());
            Files.createDirectories(dir);
            int copied = 0;
            for (Path jar : jars) {
                if (module.takes().test(jar.getFileName().toString())) {
                    Files.copy(jar, dir.resolve(jar.getFileName()), StandardCopyOption.REPLACE_EXISTING);
                    copied++;
                }
            }
            if (copied == 0) {
                throw new IllegalStateException("no jar for module " + module.name() + " in " + buildDir);
            }
            writeDescriptor(dir, module.name(), module.description(), module.classname(), esVersion);
        }
        Path rootJar;
        try (Stream<Path> files = Files.list(buildDir)) {
            rootJar = files.filter(p -> p.getFileName().toString().endsWith("-root-module.jar")).findFirst()
                    .orElseThrow(() -> new IllegalStateException("no *-root-module.jar in " + buildDir));
        }
        Path rootDir = modules.resolve("evtship-root");
        Files.createDirectories(rootDir);
        Files.copy(rootJar, rootDir.resolve(rootJar.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        writeDescriptor(rootDir, "evtship-root", "evtship's answer to GET / and HEAD / (rest-root is not published)",
                "evtship.es.root.RootPlugin", esVersion);
    }

    private static void writeDescriptor(Path dir, String name, String description, String classname, String esVersion)
            throws IOException {
        Files.writeString(dir.resolve("plugin-descriptor.properties"), String.join("\n",
                "name=" + name,
                "description=" + description,
                "version=" + esVersion,
                "classname=" + classname,
                "java.version=17",
                "elasticsearch.version=" + esVersion,
                "has.native.controller=false",
                "licensed=false",
                ""));
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }
}
