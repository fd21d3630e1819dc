# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= shardsmith-demo

.PHONY: demo test test-long lint format bench peers constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# constraints.txt pins the versions the suite last passed with: pip resolves at once instead of
# backtracking through boto3/aiobotocore/fsspec releases. Regenerate with `make constraints`.
# The demo draws its histogram with matplotlib: the optional `plots` extra.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[plots]'
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,s3,bench]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/shardsmith demo $(DEMO_DIR)

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# The long reliability runs: 20 SIGKILLs per pipeline and the coverage-guided fuzzers.
test-long: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,s3,bench,fuzz]'
	SHARDSMITH_CRASH_POINTS=20 SHARDSMITH_FUZZ=1 $(BIN)/python -m pytest \
		tests/test_crash_recovery.py tests/test_hostile_posts.py tests/test_hostile_video.py

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed-test
	for b in benchmarks/[!_]*.py; do $(BIN)/python $$b || exit 1; done

# The peers the benchmarks compare with, each in a virtualenv of its own (never the project's);
# a benchmark skips a peer that is not there, with a note. datatrove's MinHash dedup
# (benchmarks/near_dup.py) imports regex and spaCy (its word tokenizer), which its [io]
# extra does not install.
PEERS ?= .peers
peers:
	$(PYTHON) -m venv $(PEERS)/datatrove
	$(PEERS)/datatrove/bin/pip install --quiet 'datatrove[io]==0.10.1' 'tokenizers==0.23.3' \
		'regex==2026.11.15' 'spacy==3.8.7' || \
		echo "datatrove could not be installed: the benchmarks skip it"

constraints: $(VENV)/.installed-test
	$(BIN)/pip freeze --exclude-editable | grep -v -i -E '^(shardsmith|atheris)' > constraints.txt

clean:
	rm -rf $(VENV) $(PEERS) $(DEMO_DIR) .pytest_cache build *.egg-info
