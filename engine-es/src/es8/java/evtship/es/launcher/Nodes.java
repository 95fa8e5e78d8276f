package evtship.es.launcher;

import org.elasticsearch.env.Environment;
import org.elasticsearch.node.Node;

/** Elasticsearch 8.x: the public constructor loads the modules from {@code HOME/modules}. */
final class Nodes {
    private Nodes() {
    }

    static Node create(Environment env) {
        return new Node(env);
    }
}
