# Deployment: Ansible playbooks in ops/ansible, docker-compose.prod.yml, Dockerfile.
# Operators: `make deploy INVENTORY=ops/ansible/inventory/production/hosts.yml` (docs/operations.md).

INVENTORY ?= ops/ansible/inventory/example/hosts.yml
LIMIT ?=
BACKUP ?= latest
# Vault: set VAULT_PASSWORD_FILE (or ANSIBLE_VAULT_PASSWORD_FILE) to a file holding the password.
VAULT_PASSWORD_FILE ?=
ANSIBLE_ARGS ?=

ANSIBLE_COLLECTIONS_VERSION := 12.3.0
DEPLOY_ENV := ANSIBLE_CONFIG=$(CURDIR)/ops/ansible/ansible.cfg
PLAYBOOK = $(DEPLOY_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) \
	$(if $(LIMIT),--limit $(LIMIT)) \
	$(if $(VAULT_PASSWORD_FILE),--vault-password-file $(VAULT_PASSWORD_FILE)) \
	$(ANSIBLE_ARGS)

.PHONY: deploy-deps
deploy-deps: ## Install the Ansible collections the playbooks use (PyPI package ansible)
	@$(BIN)/ansible-galaxy collection list community.docker 2>/dev/null | grep -q community.docker \
	  && $(BIN)/ansible-galaxy collection list community.general 2>/dev/null | grep -q community.general \
	  && $(BIN)/ansible-galaxy collection list ansible.posix 2>/dev/null | grep -q ansible.posix \
	  || $(BIN)/pip install -q --disable-pip-version-check 'ansible==$(ANSIBLE_COLLECTIONS_VERSION)'

.PHONY: deploy
deploy: deploy-deps ## Provision INVENTORY (LIMIT= to narrow) with the whole stack
	$(PLAYBOOK) ops/ansible/site.yml

.PHONY: deploy-check
deploy-check: deploy-deps ## Dry run of deploy: check mode with diff, changes nothing
	$(PLAYBOOK) --check --diff ops/ansible/site.yml

.PHONY: rollback
rollback: deploy-deps ## Redeploy the release deployed before the current one (API hosts one at a time)
	$(PLAYBOOK) ops/ansible/rollback.yml

.PHONY: backup
backup: deploy-deps ## Take a backup now on every host (Postgres and Neo4j dumps)
	$(PLAYBOOK) ops/ansible/backup.yml

.PHONY: restore
restore: deploy-deps ## Restore BACKUP= (a timestamp under /var/backups/memory-service, or latest)
	$(PLAYBOOK) -e backup_restore_id=$(BACKUP) ops/ansible/restore.yml

.PHONY: deploy-lint
deploy-lint: deploy-deps ## Static checks of the bundle: ansible-lint, syntax, compose config and schema, hadolint
	DEPLOY_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/deploy/test_static.py

.PHONY: test-deploy
test-deploy: deploy-deps ## Deploy tests (root): static checks, a throwaway host converged twice, a 4-host scale-out (balancer, 2 API hosts, data)
	DEPLOY_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/deploy
