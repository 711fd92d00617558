# protocol/ - the wire format library, linked statically by the daemon, libvlu and the tests.
PROTO_SRCS := protocol/vlu-proto.c protocol/vlu-commands.c
PROTO_OBJS := $(PROTO_SRCS:%.c=$(O)/%.o)
PROTO_LIB  := $(O)/libvluproto.a
AR ?= ar

$(PROTO_LIB): $(PROTO_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

LIBS += $(PROTO_LIB)
