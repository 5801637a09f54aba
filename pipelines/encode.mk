# pipelines/encode.mk: one features file per avatar with make (spec diffusion.md §1).
#
#   make -f pipelines/encode.mk DATA=avatars WEIGHTS=sdxl-base/vae FEATURES=features [LIST=train.txt]
#   make -f pipelines/encode.mk -j4 ... features-each     one rhd-encode per avatar (make -j)
#   make -f pipelines/encode.mk WEIGHTS=random:1 DATA=tests/data/mini FEATURES=build/features
#
# `features` (the default) runs rhd-encode once over every avatar: the weights are loaded once,
# portraits are batched and up-to-date outputs are skipped by rhd-encode itself. `features-each`
# has one target per file, FEATURES/<name>.safetensors from DATA/<name>/img_proc_fg_000000.png and
# the weights files, for make -j or for mixing with other per-avatar rules (include this file from
# another Makefile: the variables and the pattern rule are the interface). Outputs are written
# atomically by rhd-encode, so an interrupted run never leaves a file make would take as done.

RHD_BIN ?= build/bin
DATA ?= data
FEATURES ?= features
WEIGHTS ?=
LIST ?=
ENCODE_FLAGS ?=

# the avatars: the names in LIST, or every DATA/<name>/ holding a portrait
ENCODE_AVATARS := $(if $(LIST),$(shell sed -e 's/\#.*//' -e 's:/*[[:space:]]*$$::' -e '/^[[:space:]]*$$/d' $(LIST)),\
                    $(patsubst $(DATA)/%/img_proc_fg_000000.png,%,$(wildcard $(DATA)/*/img_proc_fg_000000.png)))
ENCODE_OUTPUTS := $(ENCODE_AVATARS:%=$(FEATURES)/%.safetensors)
# the weights files the outputs depend on (none for random:SEED)
ENCODE_WEIGHT_FILES := $(if $(filter random:%,$(WEIGHTS)),,$(if $(WEIGHTS),$(wildcard $(WEIGHTS)/config.json $(WEIGHTS)/*.safetensors)))
encode_need_weights = $(if $(WEIGHTS),,$(error set WEIGHTS=DIR (a diffusers AutoencoderKL folder) or WEIGHTS=random:SEED))

.PHONY: features features-each
.DELETE_ON_ERROR:

features:
	$(encode_need_weights)$(RHD_BIN)/rhd-encode --weights $(WEIGHTS) --data $(DATA) $(if $(LIST),--list $(LIST)) --out-dir $(FEATURES) $(ENCODE_FLAGS)

features-each: $(ENCODE_OUTPUTS)

$(FEATURES)/%.safetensors: $(DATA)/%/img_proc_fg_000000.png $(ENCODE_WEIGHT_FILES)
	$(encode_need_weights)$(RHD_BIN)/rhd-encode -q --weights $(WEIGHTS) -o $@ $< $(ENCODE_FLAGS)
