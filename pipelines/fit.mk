# pipelines/fit.mk: stage-1 fitting of a data set, then stage 2 of held-out avatars one process
# each (make -j), then the forgetting report. Include or run with make -f pipelines/fit.mk.
#
#   make -f pipelines/fit.mk DATA=tests/data/mini OUT=out/fit STAGE2="avatar_101" -j2
#
# Sizes default to a small CPU fit; set FIT_OPTS for the original's (see tools/rhd-fit.md).
BIN ?= build/bin
DATA ?= tests/data/mini
OUT ?= out/fit
ROUNDS ?= 2
STEPS ?= 150
STAGE1_LIST ?=
STAGE2 ?=
FIT_OPTS ?= --triplane-res 32 --triplane-channels 16 --grid-size 32 --rays 256 --max-steps 64 --train-views 0-23 --eval-views 100,110
STAGE2_STEPS ?= 300

.PHONY: fit-all fit-stage1 fit-stage2 fit-report
fit-all: fit-report

$(OUT)/plan.json:
	@mkdir -p $(@D)
	$(BIN)/rhd-schedule fit $(if $(STAGE1_LIST),--list $(STAGE1_LIST),--data $(DATA)) --rounds $(ROUNDS) --steps $(STEPS) -o $@

$(OUT)/stage1/decoder.safetensors: $(OUT)/plan.json
	$(BIN)/rhd-fit --stage 1 --plan $< --data $(DATA) $(FIT_OPTS) --force -o $(OUT)/stage1 > $(OUT)/stage1.jsonl
fit-stage1: $(OUT)/stage1/decoder.safetensors

$(OUT)/stage2/%.safetensors: $(OUT)/stage1/decoder.safetensors
	$(BIN)/rhd-fit --stage 2 --decoder $< --data $(DATA) --avatar $* --steps $(STAGE2_STEPS) --threads 1 $(FIT_OPTS) -o $@
fit-stage2: $(STAGE2:%=$(OUT)/stage2/%.safetensors)

fit-report: fit-stage1 fit-stage2
	$(BIN)/rhd-fit --report --decoder $(OUT)/stage1/decoder.safetensors --triplanes $(OUT)/stage1/triplanes --data $(DATA) $(FIT_OPTS) --contact-sheet $(OUT)/contact_sheet.png > $(OUT)/report.json
	@cat $(OUT)/report.json
