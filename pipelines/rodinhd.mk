# pipelines/rodinhd.mk: the whole RodinHD pipeline as one Makefile, from a folder of multi-view
# avatars (the dataset layout: DATA/<avatar>/img_proc_fg_NNNNNN.png + metadata_NNNNNN.json) to
# avatars generated from portraits, rendered beside their ground truth, and a report.
#
#   make -f pipelines/rodinhd.mk DATA=tests/data/mini OUT=out/mini -j2        everything
#   make -f pipelines/rodinhd.mk ... -n                                       the plan
#   make -f pipelines/rodinhd.mk ... features | fit | stage2 | train | samples | eval | report
#
# or `include pipelines/rodinhd.mk` from a Makefile that sets the variables first. Every file is
# a target: an interrupted make resumes (rhd-fit stage 1 and rhd-train continue their run with
# --resume; the other tools write each file atomically). Options are recorded in stamp files
# OUT/.opts/<stage>.txt, rewritten only when their content changes, so changing one variable
# re-makes only the stages that depend on it. The defaults are a CPU-tiny configuration (minutes
# on 2 cores, see pipelines/rodinhd.md for the original's sizes and the cost model).
#
# Variables (make VAR=value):
#   RHD_BIN       the tools' folder (build/bin; build-cuda/bin with DEVICE=cuda)
#   DATA          the avatars (tests/data/mini)
#   OUT           everything goes here (out/rodinhd)
#   HELDOUT       avatars kept out of training (space-separated names): fitted by stage 2 (the
#                 upper bound) and sampled from their portraits. Default none
#   SAMPLE        portraits to sample, render and report (default: HELDOUT, or when nothing is
#                 held out the first training avatar: a reproduction, not a generalisation)
#   STAGE1        avatars fitted jointly with the decoder in stage 1 (default: every training
#                 avatar); the others (HELDOUT included) are fitted by stage 2, one process each
#   THREADS       threads per process (2); DEVICE cpu|cuda|auto (cpu); SEED (0)
#   OMP_WAIT_POLICY  exported to the tools, passive unless set: with make -j several OpenMP processes
#                 share the cores, and OpenMP's default spinning then starves them (seen: the
#                 demo's base and upsampler trainings side by side on 2 cores, 2 threads each, ran
#                 many times slower than one after the other)
#   WEIGHTS       rhd-encode weights: a diffusers AutoencoderKL folder or random:SEED (random:1)
#   ENCODE_OPTS   rhd-encode options (--size 64: 8x8 latents, as MODEL_CONFIG)
#   PLAN_OPTS     rhd-schedule fit options (rounds, steps per entry, order)
#   SIZE_OPTS     triplane size of the fit (--triplane-res 32 --triplane-channels 16; original 512, 32)
#   FIT_OPTS      rhd-fit stage-1 options (rays, views, renderer sizes)
#   STAGE2_OPTS   rhd-fit stage-2 options (steps, rays, renderer sizes)
#   MODEL_CONFIG  UNet config JSON over TRAIN_PRESET (a narrow 16-channel network over the small
#                 preset; empty for the preset itself); TRAIN_PRESET small|official
#   TRAIN_OPTS    rhd-train options (batch, steps, lr, EMA, checkpoint interval)
#   UPSAMPLE      1 trains the upsampler (rhd-train --model upsample) and samples through it.
#                 Off (0) by default (the pipeline then stops at the base resolution); with 1 its
#                 rendering loss uses the stage-1 decoder and DATA's views (LPIPS only with LPIPS=);
#                 tests/tools/t1200-pipeline.sh runs it at tiny sizes.
#   UPSAMPLE_OPTS, UPSAMPLE_CONFIG   its rhd-train options and network config
#   SAMPLE_OPTS   rhd-sample options (--weights model: a short run's EMA is still near its start)
#   RENDER_OPTS   rhd-render options of every render (renderer sizes)
#   EVAL_VIEWS    the held-out views rendered beside the ground truth (100,105,110,115)
#   FRAMES        turntable frames (12); MESH_RES marching-cubes points per axis (64);
#                 MESH_THRESHOLD the density iso value (10, rhd-render's default; a sample with no
#                 density above it fails its mesh, as rhd-render refuses to write an empty one)
#   LPIPS         LPIPS weights file (pipelines/lpips_weights.py) to add LPIPS to the metrics
#   PYTHON        python3 for the report (standard library only)
#
# Outputs under OUT/:
#   features/<a>.safetensors           rhd-encode, every avatar
#   plan.json                          rhd-schedule fit over STAGE1
#   fit/stage1.jsonl                   rhd-fit --stage 1 stdout (entries, forgetting report); the
#   fit/decoder.safetensors, fit/triplanes/<a>.safetensors    run's decoder and triplanes
#   stage2/<a>.safetensors             rhd-fit --stage 2, every avatar not in STAGE1 (make -j)
#   pairs.txt                          training pairs (triplane features), training avatars
#   base/train.json                    rhd-train stdout; base/checkpoint.safetensors,
#                                      base/train_log.jsonl, base/loss.png
#   samples/<a>.safetensors            rhd-sample of each SAMPLE portrait
#   eval/{sample,fitted}/<a>/metrics.json, contact_sheet.png, rgb_*.png
#                                      rhd-render --metrics of the sample and of the fitted
#                                      triplane (the upper bound) at EVAL_VIEWS
#   turntables/<a>/rgb_NNNN.png        the sample on an orbit
#   meshes/<a>.ply                     marching cubes of the sample
#   report.md, report.html, metrics.json   pipelines/report.py: every stage at a glance

RHD_BIN ?= build/bin
DATA ?= tests/data/mini
OUT ?= out/rodinhd
HELDOUT ?=
SAMPLE ?=
STAGE1 ?=
THREADS ?= 2
OMP_WAIT_POLICY ?= passive
export OMP_WAIT_POLICY
DEVICE ?= cpu
SEED ?= 0
WEIGHTS ?= random:1
ENCODE_OPTS ?= --size 64
PLAN_OPTS ?= --rounds 4 --steps 300 --order interleaved --group 4
SIZE_OPTS ?= --triplane-res 32 --triplane-channels 16
FIT_OPTS ?= --rays 1024 --grid-size 32 --max-steps 64 --train-views 0-23 --eval-views 100,110
STAGE2_OPTS ?= --steps 300 --rays 1024 --grid-size 32 --max-steps 64 --train-views 0-23 --eval-views 100,110
TRAIN_PRESET ?= small
MODEL_CONFIG ?= {"in_channels": 16, "out_channels": 32, "latent_size": 8, "patch": 8, "model_channels": 16, "channel_mult": [1, 2], "groups": 8, "num_head_channels": 16, "attention_resolutions": [8]}
TRAIN_OPTS ?= --batch 2 --steps 200 --lr 2e-3 --ema 0.99 --log-every 10 --save-every 50
UPSAMPLE ?= 0
UPSAMPLE_CONFIG ?=
UPSAMPLE_OPTS ?= --batch 2 --steps 200 --lr 2e-3 --ema 0.99 --log-every 10 --save-every 50
SAMPLE_OPTS ?= --weights model
RENDER_OPTS ?= --grid-size 32 --max-steps 64
EVAL_VIEWS ?= 100,105,110,115
FRAMES ?= 12
MESH_RES ?= 64
MESH_THRESHOLD ?= 10
LPIPS ?=
PYTHON ?= python3

comma := ,
rhd_empty :=
rhd_space := $(rhd_empty) $(rhd_empty)
RHD_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
.DELETE_ON_ERROR:
.SECONDEXPANSION:

# ---- the avatars ----
rhd_all := $(patsubst $(DATA)/%/metadata_000000.json,%,$(wildcard $(DATA)/*/metadata_000000.json))
rhd_train := $(filter-out $(HELDOUT),$(rhd_all))
rhd_stage1 := $(if $(STAGE1),$(STAGE1),$(rhd_train))
rhd_stage2 := $(filter-out $(rhd_stage1),$(rhd_all))
rhd_sample := $(if $(SAMPLE),$(SAMPLE),$(if $(HELDOUT),$(HELDOUT),$(firstword $(rhd_train))))
$(if $(rhd_all),,$(error DATA=$(DATA): no avatar folder with metadata_000000.json found, expected DATA/<avatar>/metadata_000000.json))
$(if $(filter-out $(rhd_all),$(HELDOUT) $(STAGE1) $(SAMPLE)),$(error HELDOUT/STAGE1/SAMPLE name avatars not in DATA=$(DATA): $(filter-out $(rhd_all),$(HELDOUT) $(STAGE1) $(SAMPLE))))
$(if $(filter $(HELDOUT),$(STAGE1)),$(error STAGE1 names held-out avatars: $(filter $(HELDOUT),$(STAGE1))))

# the fitted triplane of avatar $1: the stage-1 run's or its stage-2 file
rhd_tri = $(if $(filter $1,$(rhd_stage1)),$(OUT)/fit/triplanes/$1.safetensors,$(OUT)/stage2/$1.safetensors)
# the views of avatar $1, as one stamp OUT/.views/$1 newer than each of its view files (touching
# one re-makes what reads the avatar; the stamp keeps the prerequisite lists short)
rhd_views = $(OUT)/.views/$1
rhd_frame_ids := $(shell seq -f %04g 0 $$(( $(FRAMES) - 1 )))

# ---- option stamps: OUT/.opts/NAME.txt holds the text; rewritten only when it changes ----
rhd_opts := $(OUT)/.opts
rhd_q = $(subst ','\'',$1)
rhd_stamp = $(shell mkdir -p $(rhd_opts) && printf '%s\n' '$(call rhd_q,$2)' > $(rhd_opts)/$1.new && \
              { cmp -s $(rhd_opts)/$1.new $(rhd_opts)/$1 && rm -f $(rhd_opts)/$1.new || mv -f $(rhd_opts)/$1.new $(rhd_opts)/$1; })
rhd_common := --threads $(THREADS) --device $(DEVICE)
$(call rhd_stamp,encode.txt,$(WEIGHTS) $(ENCODE_OPTS))
$(call rhd_stamp,plan.txt,$(PLAN_OPTS) --seed $(SEED))
$(call rhd_stamp,stage1.list,$(rhd_stage1))
$(call rhd_stamp,fit.txt,$(SIZE_OPTS) $(FIT_OPTS) --seed $(SEED) $(rhd_common))
$(call rhd_stamp,stage2.txt,$(STAGE2_OPTS) --seed $(SEED) $(rhd_common))
$(call rhd_stamp,train.list,$(rhd_train))
$(call rhd_stamp,train.txt,--preset $(TRAIN_PRESET) $(TRAIN_OPTS) --seed $(SEED) $(rhd_common))
$(call rhd_stamp,model.json,$(MODEL_CONFIG))
$(call rhd_stamp,sample.txt,$(SAMPLE_OPTS) --seed $(SEED) $(rhd_common))
$(call rhd_stamp,render.txt,$(RENDER_OPTS) --views $(EVAL_VIEWS) $(if $(LPIPS),--lpips $(LPIPS)) $(rhd_common))
$(call rhd_stamp,turntable.txt,$(RENDER_OPTS) --frames $(FRAMES) $(rhd_common))
$(call rhd_stamp,mesh.txt,$(RENDER_OPTS) --mesh-res $(MESH_RES) --mesh-threshold $(MESH_THRESHOLD) $(rhd_common))
ifeq ($(UPSAMPLE),1)
$(call rhd_stamp,upsample.txt,$(UPSAMPLE_OPTS) --seed $(SEED) $(rhd_common))
$(call rhd_stamp,upsample.json,$(UPSAMPLE_CONFIG))
endif

# a run folder continues (--resume) when its checkpoint $1 is newer than every prerequisite (a
# killed make), else starts over (--force): options, plan or pairs changed
rhd_resume = $$(if [ -f $1 ] && [ -z "$$(find $^ -newer $1 | head -n 1)" ]; then echo --resume; else echo --force; fi)

# ---- targets ----
rhd_features := $(rhd_all:%=$(OUT)/features/%.safetensors)
rhd_stage2_files := $(rhd_stage2:%=$(OUT)/stage2/%.safetensors)
rhd_samples := $(rhd_sample:%=$(OUT)/samples/%.safetensors)
rhd_eval := $(rhd_sample:%=$(OUT)/eval/sample/%/metrics.json) $(rhd_sample:%=$(OUT)/eval/fitted/%/metrics.json)
rhd_turntables := $(rhd_sample:%=$(OUT)/turntables/%/rgb_0000.png)
rhd_meshes := $(rhd_sample:%=$(OUT)/meshes/%.ply)
rhd_up := $(if $(filter 1,$(UPSAMPLE)),$(OUT)/upsample/train.json)

.PHONY: all features plan fit stage2 pairs train samples eval turntables meshes report
all: report
features: $(rhd_features)
plan: $(OUT)/plan.json
fit: $(OUT)/fit/stage1.jsonl
stage2: $(rhd_stage2_files)
pairs: $(OUT)/pairs.txt
train: $(OUT)/base/train.json $(rhd_up)
samples: $(rhd_samples)
eval: $(rhd_eval)
turntables: $(rhd_turntables)
meshes: $(rhd_meshes)
report: $(OUT)/report.md

$(OUT)/features/%.safetensors: $(DATA)/%/img_proc_fg_000000.png $(rhd_opts)/encode.txt
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-encode -q --force --weights $(WEIGHTS) $(ENCODE_OPTS) $(rhd_common) -o $@ $<

$(OUT)/plan.json: $(rhd_opts)/plan.txt $(rhd_opts)/stage1.list
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-schedule fit -q --avatars $(subst $(rhd_space),$(comma),$(strip $(rhd_stage1))) $(PLAN_OPTS) --seed $(SEED) -o $@

rhd_fit_out := $(OUT)/fit/decoder.safetensors $(rhd_stage1:%=$(OUT)/fit/triplanes/%.safetensors)
$(OUT)/fit/stage1.jsonl: $(OUT)/plan.json $(rhd_opts)/fit.txt $(foreach a,$(rhd_stage1),$(call rhd_views,$a))
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-fit -q --stage 1 --plan $< --data $(DATA) $(SIZE_OPTS) $(FIT_OPTS) --seed $(SEED) $(rhd_common) \
	    $(call rhd_resume,$(@D)/checkpoint.safetensors) -o $(@D) > $@.tmp
	mv -f $@.tmp $@ && touch $(rhd_fit_out)
$(rhd_fit_out): $(OUT)/fit/stage1.jsonl
	@test -f $@ || { echo "rodinhd.mk: $@: not written by the stage-1 run (remove $< to refit)" >&2; exit 1; }

$(OUT)/.views/%: $$(wildcard $(DATA)/$$*/img_proc_fg_*.png $(DATA)/$$*/metadata_*.json)
	@mkdir -p $(@D) && touch $@

$(OUT)/stage2/%.safetensors: $(OUT)/fit/decoder.safetensors $(rhd_opts)/stage2.txt $$(call rhd_views,$$*)
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-fit -q --stage 2 --decoder $< --data $(DATA) --avatar $* $(STAGE2_OPTS) --seed $(SEED) $(rhd_common) --force -o $@ \
	    > $(OUT)/stage2/$*.log.json

# pairs: paths relative to OUT (the list's folder)
$(OUT)/pairs.txt: $(rhd_opts)/train.list $(foreach a,$(rhd_train),$(call rhd_tri,$a) $(OUT)/features/$a.safetensors)
	rm -f $@.tmp; $(foreach a,$(rhd_train),printf '%s %s\n' $(patsubst $(OUT)/%,%,$(call rhd_tri,$a)) features/$a.safetensors >> $@.tmp;) mv -f $@.tmp $@

rhd_train_out := $(addprefix $(OUT)/base/,checkpoint.safetensors train_log.jsonl loss.png)
$(OUT)/base/train.json: $(OUT)/pairs.txt $(rhd_opts)/train.txt $(rhd_opts)/model.json
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-train -q --model base --preset $(TRAIN_PRESET) $(if $(MODEL_CONFIG),--model-config $(rhd_opts)/model.json) \
	    --data $< $(TRAIN_OPTS) --seed $(SEED) $(rhd_common) $(call rhd_resume,$(@D)/checkpoint.safetensors) -o $(@D) > $@.tmp
	mv -f $@.tmp $@ && touch $(rhd_train_out)
$(rhd_train_out): $(OUT)/base/train.json
	@test -f $@ || { echo "rodinhd.mk: $@: not written by rhd-train (remove $< to retrain)" >&2; exit 1; }

ifeq ($(UPSAMPLE),1)
$(OUT)/upsample/train.json: $(OUT)/pairs.txt $(OUT)/fit/decoder.safetensors $(rhd_opts)/upsample.txt $(rhd_opts)/upsample.json
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-train -q --model upsample --preset $(TRAIN_PRESET) $(if $(UPSAMPLE_CONFIG),--model-config $(rhd_opts)/upsample.json) \
	    --data $< --decoder $(OUT)/fit/decoder.safetensors --views $(DATA) $(if $(LPIPS),--lpips $(LPIPS),--lpips-weight 0) $(UPSAMPLE_OPTS) --seed $(SEED) $(rhd_common) $(call rhd_resume,$(@D)/checkpoint.safetensors) -o $(@D) > $@.tmp
	mv -f $@.tmp $@ && touch $(@D)/checkpoint.safetensors
$(OUT)/upsample/checkpoint.safetensors: $(OUT)/upsample/train.json
	@test -f $@
endif
rhd_up_ckpt := $(if $(filter 1,$(UPSAMPLE)),$(OUT)/upsample/checkpoint.safetensors)

$(OUT)/samples/%.safetensors: $(OUT)/features/%.safetensors $(OUT)/base/checkpoint.safetensors $(rhd_up_ckpt) $(rhd_opts)/sample.txt
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-sample -q --base $(OUT)/base/checkpoint.safetensors $(if $(rhd_up_ckpt),--upsample $(rhd_up_ckpt)) \
	    $(SAMPLE_OPTS) --seed $(SEED) $(rhd_common) --force -o $(@D) $< > $(OUT)/samples/$*.log.json

# the renders beside the ground truth; `fitted` is the upper bound (the triplane the model learns)
rhd_render = $(RHD_BIN)/rhd-render -q --decoder $(OUT)/fit/decoder.safetensors --data $(DATA)/$* --views $(EVAL_VIEWS) \
    $(RENDER_OPTS) $(rhd_common) --metrics $(if $(LPIPS),--lpips $(LPIPS)) --contact-sheet $(@D)/contact_sheet.png -o $(@D)
$(OUT)/eval/sample/%/metrics.json $(OUT)/eval/sample/%/contact_sheet.png: $(OUT)/samples/%.safetensors $(OUT)/fit/decoder.safetensors $(rhd_opts)/render.txt
	@mkdir -p $(@D)
	$(rhd_render) $< > $(@D)/metrics.json.tmp && mv -f $(@D)/metrics.json.tmp $(@D)/metrics.json
$(OUT)/eval/fitted/%/metrics.json $(OUT)/eval/fitted/%/contact_sheet.png: $$(call rhd_tri,$$*) $(OUT)/fit/decoder.safetensors $(rhd_opts)/render.txt
	@mkdir -p $(@D)
	$(rhd_render) $< > $(@D)/metrics.json.tmp && mv -f $(@D)/metrics.json.tmp $(@D)/metrics.json

$(foreach i,$(rhd_frame_ids),$(OUT)/turntables/%/rgb_$i.png): $(OUT)/samples/%.safetensors $(OUT)/fit/decoder.safetensors $(rhd_opts)/turntable.txt
	$(RHD_BIN)/rhd-render -q --decoder $(OUT)/fit/decoder.safetensors --data $(DATA)/$* --orbit --frames $(FRAMES) \
	    $(RENDER_OPTS) $(rhd_common) -o $(@D) $<

$(OUT)/meshes/%.ply: $(OUT)/samples/%.safetensors $(OUT)/fit/decoder.safetensors $(rhd_opts)/mesh.txt
	@mkdir -p $(@D)
	$(RHD_BIN)/rhd-render -q --decoder $(OUT)/fit/decoder.safetensors --no-images --mesh $@ --mesh-res $(MESH_RES) \
	    --mesh-threshold $(MESH_THRESHOLD) \
	    $(RENDER_OPTS) $(rhd_common) $<

$(OUT)/report.md $(OUT)/report.html $(OUT)/metrics.json &: $(RHD_MK_DIR)/report.py $(OUT)/fit/stage1.jsonl $(OUT)/base/train.json \
        $(rhd_eval) $(rhd_turntables) $(rhd_meshes) $(rhd_stage2_files)
	$(PYTHON) $(RHD_MK_DIR)/report.py --out $(OUT) --samples '$(rhd_sample)' --heldout '$(HELDOUT)' --data $(DATA)
