# `make deploy-check`: render every kustomize overlay and validate every object strictly and
# offline (Kubernetes + Strimzi + KEDA + Prometheus Operator schemas), check and unit-test the
# Prometheus rules, and check the generated PrometheusRule and Grafana dashboards are current.
# Included by the root Makefile (`include deploy/deploy.mk`); uses its $(PY) and `venv`.
#
# Everything is fetched on first use into git-ignored .cache/ from registries only
# (GitHub, kubeconform's default schema source, is not needed):
#   kustomize, kubeconform   Go modules, `go install` (proxy.golang.org)    -> .cache/bin
#   Kubernetes schemas       PyPI wheel kubernetes-validate (pip download)   -> .cache/deploy
#   KEDA / Prometheus Op.    CRD YAML inside their Go modules (go mod download)
#   Strimzi                  io.strimzi:api + crd-generator from Maven Central; the CRDs are
#                            generated from the api classes (needs Java >= 21)
#   promtool                 Debian package `prometheus` (apt-get; its service is stopped)

DEPLOY_BIN := .cache/bin
DEPLOY_CACHE := .cache/deploy
DEPLOY_SCHEMAS := $(DEPLOY_CACHE)/schemas
KUSTOMIZE := $(DEPLOY_BIN)/kustomize
KUBECONFORM := $(DEPLOY_BIN)/kubeconform

KUSTOMIZE_VERSION ?= v5.7.1
KUBECONFORM_VERSION ?= v0.8.0
KUBERNETES_VALIDATE_VERSION ?= 1.37.0
# Oldest and newest Kubernetes we claim to support; every object is checked against both.
KUBERNETES_VERSIONS ?= 1.31.0 1.35.0
STRIMZI_VERSION ?= 1.2.0
KEDA_VERSION ?= v2.21.0
PROMETHEUS_OPERATOR_VERSION ?= v0.85.0

DEPLOY_OVERLAYS := base overlays/dev overlays/prod
deploy_space := $() $()
K8S_SCHEMA_STAMP := $(DEPLOY_SCHEMAS)/.k8s-$(KUBERNETES_VALIDATE_VERSION)-$(subst $(deploy_space),_,$(KUBERNETES_VERSIONS))
CRD_SCHEMA_STAMP := $(DEPLOY_SCHEMAS)/.crds-$(STRIMZI_VERSION)-$(KEDA_VERSION)-$(PROMETHEUS_OPERATOR_VERSION)
KUBECONFORM_FLAGS = -strict -summary -output text \
	-schema-location '$(abspath $(DEPLOY_SCHEMAS))/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json' \
	-schema-location '$(abspath $(DEPLOY_SCHEMAS))/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'

.PHONY: deploy-check deploy-tools deploy-schemas deploy-render deploy-validate deploy-rules deploy-generated

deploy-check: deploy-generated deploy-rules deploy-validate
	@echo "deploy-check: OK"

deploy-tools: $(KUSTOMIZE) $(KUBECONFORM) $(DEPLOY_CACHE)/.promtool

$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "deploy-check: go is needed to install kustomize" >&2; exit 1; }
	GOBIN=$(abspath $(DEPLOY_BIN)) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(KUBECONFORM):
	@command -v go >/dev/null || { echo "deploy-check: go is needed to install kubeconform" >&2; exit 1; }
	GOBIN=$(abspath $(DEPLOY_BIN)) go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

# promtool from Debian's prometheus package. The package may start a Prometheus service;
# nothing here wants one running, so it is stopped and disabled right away.
$(DEPLOY_CACHE)/.promtool:
	@mkdir -p $(@D)
	@if ! command -v promtool >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y -q --no-install-recommends prometheus \
	    || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends prometheus; }; \
	  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then \
	    $$SUDO systemctl disable --now prometheus; \
	  elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then \
	    $$SUDO /etc/init.d/prometheus stop; \
	  fi; \
	fi
	@promtool --version 2>&1 | head -1
	@touch $@

deploy-schemas: $(K8S_SCHEMA_STAMP) $(CRD_SCHEMA_STAMP)

$(K8S_SCHEMA_STAMP): deploy/tools/k8s_jsonschema.py | venv
	@mkdir -p $(DEPLOY_CACHE)/wheels
	$(PY) -m pip download -q --no-deps -d $(DEPLOY_CACHE)/wheels kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	python3 deploy/tools/k8s_jsonschema.py \
	  $(DEPLOY_CACHE)/wheels/kubernetes_validate-$(KUBERNETES_VALIDATE_VERSION)-py3-none-any.whl \
	  $(DEPLOY_SCHEMAS) $(KUBERNETES_VERSIONS)
	@touch $@

# The Strimzi generator's classes are Java 21 bytecode: use the first java >= 21 found.
$(CRD_SCHEMA_STAMP): deploy/tools/crd_to_jsonschema.py deploy/tools/strimzi-crds/pom.xml $(K8S_SCHEMA_STAMP) | venv
	@mkdir -p $(DEPLOY_CACHE)/crds
	set -e; \
	keda=$$(go mod download -json github.com/kedacore/keda/v2@$(KEDA_VERSION) | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); \
	promop=$$(go mod download -json github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION) | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); \
	java=; for j in "$${JAVA_HOME:+$$JAVA_HOME/bin/java}" "$$(command -v java)" /usr/lib/jvm/*/bin/java; do \
	  [ -x "$$j" ] || continue; \
	  v=$$("$$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'); \
	  if [ "$${v%%.*}" -ge 21 ] 2>/dev/null; then java=$$j; break; fi; \
	done; \
	[ -n "$$java" ] || { echo "deploy-check: Java >= 21 is needed to generate the Strimzi CRDs" >&2; exit 1; }; \
	mvn -q -B -f deploy/tools/strimzi-crds/pom.xml -Dstrimzi.version=$(STRIMZI_VERSION) \
	  dependency:build-classpath -Dmdep.outputFile=$(abspath $(DEPLOY_CACHE))/strimzi-classpath.txt; \
	"$$java" -cp "$$(cat $(DEPLOY_CACHE)/strimzi-classpath.txt)" io.strimzi.crdgenerator.CrdGenerator \
	  --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
	  io.strimzi.api.kafka.model.topic.KafkaTopic=$(DEPLOY_CACHE)/crds/strimzi-kafkatopic.yaml \
	  io.strimzi.api.kafka.model.user.KafkaUser=$(DEPLOY_CACHE)/crds/strimzi-kafkauser.yaml; \
	rm -rf $(DEPLOY_SCHEMAS)/crds; \
	$(PY) deploy/tools/crd_to_jsonschema.py $(DEPLOY_SCHEMAS)/crds \
	  --object-meta $(DEPLOY_SCHEMAS)/v$(lastword $(KUBERNETES_VERSIONS))-standalone-strict/deployment-apps-v1.json \
	  $(DEPLOY_CACHE)/crds/strimzi-kafkatopic.yaml $(DEPLOY_CACHE)/crds/strimzi-kafkauser.yaml \
	  $$keda/config/crd/bases/keda.sh_scaledobjects.yaml \
	  $$keda/config/crd/bases/keda.sh_triggerauthentications.yaml \
	  $$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
	  $$promop/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml \
	  $$promop/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
	@touch $@

# Generated files must match their generators.
deploy-generated:
	python3 deploy/tools/sync_prometheusrule.py --check
	python3 deploy/tools/grafana_dashboards.py --check

deploy-rules: $(DEPLOY_CACHE)/.promtool
	promtool check rules deploy/prometheus/rules/*.rules.yml
	promtool test rules deploy/prometheus/tests/*.test.yml

deploy-render: $(KUSTOMIZE)
	@mkdir -p $(DEPLOY_CACHE)/rendered
	@for overlay in $(DEPLOY_OVERLAYS); do \
	  out=$(DEPLOY_CACHE)/rendered/$$(echo $$overlay | tr / -).yaml; \
	  $(KUSTOMIZE) build deploy/k8s/$$overlay > $$out || exit 1; \
	  echo "rendered deploy/k8s/$$overlay -> $$out ($$(grep -c '^kind:' $$out) objects)"; \
	done

# -strict rejects unknown fields; a kind without a schema is an error, not a skip. The
# negative fixture proves the schemas are there and strict (kubeconform must fail it).
deploy-validate: deploy-render deploy-schemas $(KUBECONFORM)
	@set -e; for version in $(KUBERNETES_VERSIONS); do \
	  echo "kubeconform, Kubernetes $$version:"; \
	  $(KUBECONFORM) $(KUBECONFORM_FLAGS) -kubernetes-version $$version $(DEPLOY_CACHE)/rendered/*.yaml; \
	done
	@if $(KUBECONFORM) $(KUBECONFORM_FLAGS) -kubernetes-version $(lastword $(KUBERNETES_VERSIONS)) \
	    deploy/tools/testdata/invalid-manifests.yaml > $(DEPLOY_CACHE)/negative.txt 2>&1; then \
	  cat $(DEPLOY_CACHE)/negative.txt; echo "deploy-check: invalid manifests were accepted" >&2; exit 1; \
	fi; \
	grep -q 'Valid: 0,' $(DEPLOY_CACHE)/negative.txt || { cat $(DEPLOY_CACHE)/negative.txt; exit 1; }; \
	echo "kubeconform rejects every document of the invalid fixture: schemas are strict"
	$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_k8s_topics.py tests/unit/test_deploy_files.py
