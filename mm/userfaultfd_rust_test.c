// SPDX-License-Identifier: GPL-2.0
/*
 * Test support for the Rust implementation of the userfaultfd fills
 * (CONFIG_USERFAULTFD_RUST_TEST), included at the end of mm/userfaultfd.c:
 *
 * - debugfs userfaultfd/mfill_impl selects the implementation at run time:
 *   "rust" (the default), "rust-batch" (the Rust UFFDIO_CONTINUE mapping as
 *   many pages as it can under one PTE table lock) or "c";
 * - debugfs userfaultfd/stats counts the pages each implementation mapped;
 * - with CONFIG_USERFAULTFD_RUST_KUNIT_TEST, userfaultfd contexts that the
 *   KUnit tests of the Rust code create and drive.
 *
 * None of this is built into a production kernel.
 */

#include <linux/debugfs.h>
#include <linux/mman.h>

static DEFINE_MUTEX(mfill_impl_lock);
static DEFINE_STATIC_KEY_TRUE(mfill_rust);
static DEFINE_STATIC_KEY_FALSE(mfill_rust_batch);

enum mfill_stat_item {
	MFILL_CONTINUE_C,
	MFILL_CONTINUE_RUST,
	MFILL_INSTALL_C,
	MFILL_INSTALL_RUST,
	NR_MFILL_STATS,
};

static const char * const mfill_stat_names[NR_MFILL_STATS] = {
	"continue_c", "continue_rust", "install_c", "install_rust",
};

static DEFINE_PER_CPU(unsigned long [NR_MFILL_STATS], mfill_stats);

static int mfill_count(enum mfill_stat_item item, int ret)
{
	if (!ret)
		this_cpu_inc(mfill_stats[item]);
	return ret;
}

static int mfill_install_pte(pmd_t *dst_pmd, struct vm_area_struct *dst_vma,
			     unsigned long dst_addr, struct page *page,
			     uffd_flags_t flags)
{
	if (static_branch_likely(&mfill_rust))
		return mfill_count(MFILL_INSTALL_RUST,
				   rust_mfill_atomic_install_pte(dst_pmd, dst_vma,
								 dst_addr, page,
								 flags));
	return mfill_count(MFILL_INSTALL_C,
			   mfill_atomic_install_pte(dst_pmd, dst_vma, dst_addr,
						    page, flags));
}

static int mfill_continue(struct mfill_state *state)
{
	unsigned long nr;
	int ret;

	if (static_branch_unlikely(&mfill_rust_batch)) {
		ret = rust_mfill_atomic_pte_continue_batch(state->vma, state->pmd,
							   state->dst_addr,
							   state->dst_start + state->len,
							   state->flags, &nr);
		if (ret)
			return ret;
		this_cpu_add(mfill_stats[MFILL_CONTINUE_RUST], nr);
		state->batch_size = nr << PAGE_SHIFT;
		return 0;
	}
	if (static_branch_likely(&mfill_rust))
		return mfill_count(MFILL_CONTINUE_RUST,
				   rust_mfill_atomic_pte_continue(state->vma,
								  state->pmd,
								  state->dst_addr,
								  state->flags));
	return mfill_count(MFILL_CONTINUE_C, mfill_atomic_pte_continue(state));
}

static unsigned long mfill_step_size(struct mfill_state *state)
{
	unsigned long size = state->batch_size ?: PAGE_SIZE;

	state->batch_size = 0;
	return size;
}

static int mfill_impl_show(struct seq_file *m, void *v)
{
	mutex_lock(&mfill_impl_lock);
	if (static_branch_unlikely(&mfill_rust_batch))
		seq_puts(m, "rust-batch\n");
	else
		seq_puts(m, static_branch_likely(&mfill_rust) ? "rust\n" : "c\n");
	mutex_unlock(&mfill_impl_lock);
	return 0;
}

static int mfill_impl_open(struct inode *inode, struct file *file)
{
	return single_open(file, mfill_impl_show, NULL);
}

static ssize_t mfill_impl_write(struct file *file, const char __user *ubuf,
				size_t len, loff_t *ppos)
{
	bool rust, batch;
	char buf[16];

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sysfs_streq(buf, "rust")) {
		rust = true;
		batch = false;
	} else if (sysfs_streq(buf, "rust-batch")) {
		rust = true;
		batch = true;
	} else if (sysfs_streq(buf, "c")) {
		rust = false;
		batch = false;
	} else {
		return -EINVAL;
	}
	/* Both keys change together: no writer sees the other's half. */
	mutex_lock(&mfill_impl_lock);
	if (rust)
		static_branch_enable(&mfill_rust);
	else
		static_branch_disable(&mfill_rust);
	if (batch)
		static_branch_enable(&mfill_rust_batch);
	else
		static_branch_disable(&mfill_rust_batch);
	mutex_unlock(&mfill_impl_lock);
	return len;
}

static const struct file_operations mfill_impl_fops = {
	.owner		= THIS_MODULE,
	.open		= mfill_impl_open,
	.read		= seq_read,
	.write		= mfill_impl_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

static int mfill_stats_show(struct seq_file *m, void *v)
{
	int i, cpu;

	for (i = 0; i < NR_MFILL_STATS; i++) {
		unsigned long sum = 0;

		for_each_possible_cpu(cpu)
			sum += per_cpu(mfill_stats, cpu)[i];
		seq_printf(m, "%s %lu\n", mfill_stat_names[i], sum);
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mfill_stats);

static int __init mfill_rust_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("userfaultfd", NULL);

	debugfs_create_file("mfill_impl", 0644, dir, NULL, &mfill_impl_fops);
	debugfs_create_file("stats", 0444, dir, NULL, &mfill_stats_fops);
	return 0;
}
late_initcall(mfill_rust_debugfs_init);

#ifdef CONFIG_USERFAULTFD_RUST_KUNIT_TEST
/*
 * A userfaultfd context on current->mm, as userfaultfd(UFFD_USER_MODE_ONLY)
 * creates it but without a file descriptor: faults the kernel takes on a
 * registered range fail instead of waiting for a handler.
 */
struct file *uffd_kunit_open(void)
{
	struct userfaultfd_ctx *ctx;
	struct file *file;

	ctx = kmem_cache_alloc(userfaultfd_ctx_cachep, GFP_KERNEL);
	if (!ctx)
		return ERR_PTR(-ENOMEM);
	refcount_set(&ctx->refcount, 1);
	ctx->flags = UFFD_USER_MODE_ONLY;
	ctx->features = 0;
	ctx->released = false;
	init_rwsem(&ctx->map_changing_lock);
	atomic_set(&ctx->mmap_changing, 0);
	ctx->mm = current->mm;
	file = anon_inode_getfile("[userfaultfd]", &userfaultfd_fops, ctx,
				  O_RDONLY);
	if (IS_ERR(file)) {
		kmem_cache_free(userfaultfd_ctx_cachep, ctx);
		return file;
	}
	mmgrab(ctx->mm);
	return file;
}

/* Issues @cmd with @arg passed through a page of user memory of current->mm. */
static long uffd_kunit_ioctl(struct file *file, unsigned int cmd, void *arg,
			     size_t size)
{
	unsigned long uaddr;
	long ret;

	uaddr = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, 0);
	if (IS_ERR_VALUE(uaddr))
		return uaddr;
	ret = -EFAULT;
	if (!copy_to_user((void __user *)uaddr, arg, size)) {
		ret = userfaultfd_ioctl(file, cmd, uaddr);
		if (copy_from_user(arg, (void __user *)uaddr, size))
			ret = -EFAULT;
	}
	vm_munmap(uaddr, PAGE_SIZE);
	return ret;
}

long uffd_kunit_api(struct file *file, u64 features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	return uffd_kunit_ioctl(file, UFFDIO_API, &api, sizeof(api));
}

long uffd_kunit_register(struct file *file, unsigned long start,
			 unsigned long len, vm_flags_t vm_flags)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
	};

	if (vm_flags & VM_UFFD_MISSING)
		reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
	if (vm_flags & VM_UFFD_WP)
		reg.mode |= UFFDIO_REGISTER_MODE_WP;
	if (vm_flags & VM_UFFD_MINOR)
		reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
	return uffd_kunit_ioctl(file, UFFDIO_REGISTER, &reg, sizeof(reg));
}

/* UFFDIO_COPY; *@copy gets the field the kernel writes back. */
long uffd_kunit_copy(struct file *file, unsigned long dst, unsigned long src,
		     unsigned long len, bool wp, s64 *copy)
{
	struct uffdio_copy arg = {
		.dst = dst, .src = src, .len = len,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};
	long ret = uffd_kunit_ioctl(file, UFFDIO_COPY, &arg, sizeof(arg));

	*copy = arg.copy;
	return ret;
}

/* UFFDIO_ZEROPAGE; *@zeropage gets the field the kernel writes back. */
long uffd_kunit_zeropage(struct file *file, unsigned long start,
			 unsigned long len, s64 *zeropage)
{
	struct uffdio_zeropage arg = { .range = { .start = start, .len = len } };
	long ret = uffd_kunit_ioctl(file, UFFDIO_ZEROPAGE, &arg, sizeof(arg));

	*zeropage = arg.zeropage;
	return ret;
}

static struct vm_operations_struct uffd_kunit_vm_ops;

/*
 * Makes the VMA at @addr of current->mm use @ops as its memory type's
 * userfaultfd operations, the way a memory type written in Rust provides
 * them, keeping its other vm_operations. One VMA at a time.
 */
int uffd_kunit_set_uffd_ops(unsigned long addr, const struct vm_uffd_ops *ops)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	int ret = -ENOENT;

	mmap_write_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && vma->vm_ops) {
		vma_start_write(vma);
		uffd_kunit_vm_ops = *vma->vm_ops;
		uffd_kunit_vm_ops.uffd_ops = ops;
		vma->vm_ops = &uffd_kunit_vm_ops;
		ret = 0;
	}
	mmap_write_unlock(mm);
	return ret;
}
#endif /* CONFIG_USERFAULTFD_RUST_KUNIT_TEST */
